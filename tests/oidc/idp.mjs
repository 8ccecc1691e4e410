// The identity provider side of tests/oidc/oidc.sh: a real OpenID provider
// (npm oidc-provider) with the device flow and PKCE, its people in memory;
// ID tokens made with its own key (jose) to prove the gateway judges one
// claim at a time; and the employee's browser (playwright-core driving
// Debian's chromium) logging in at the verification URI.
//
//   node idp.mjs keys JWKS_FILE
//   node idp.mjs serve ISSUER HOST PORT CERT KEY JWKS_FILE REDIRECT_URI
//   node idp.mjs token JWKS_FILE CLAIMS_JSON [forge]
//   node idp.mjs browse URL LOGIN SCREENSHOT_DIR
//   node idp.mjs signin PANEL_URL LOGIN SCREENSHOT_DIR
import fs from 'node:fs';
import https from 'node:https';

const [command, ...args] = process.argv.slice(2);

// People and their groups, as a directory would hold them.
const people = {
  alice: { name: 'Alice Smith', groups: ['staff', 'developers'] },
  bob: { name: 'Bob Jones', groups: ['staff', 'sales'] },
  carol: { name: 'Carol Admin', groups: ['staff', 'vpn-admins'] },
  dave: { name: 'Dave Ops', groups: ['vpn-ops'] },
};

async function keys(file) {
  const jose = await import('jose');
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  Object.assign(jwk, { kid: 'idp-1', alg: 'RS256', use: 'sig' });
  fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }), { mode: 0o600 });
}

async function serve(issuer, host, port, cert, key, jwksFile, redirectUri) {
  const { default: Provider } = await import('oidc-provider');
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'meshgate',
      token_endpoint_auth_method: 'none', // public: devices hold no secret
      grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
    }],
    features: { deviceFlow: { enabled: true }, devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const person = people[id];
      if (!person) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: `sub-${id}`, preferred_username: id, name: person.name,
            email: `${id}@example.com`, groups: person.groups,
          };
        },
      };
    },
    claims: { openid: ['sub', 'groups'], profile: ['preferred_username', 'name'], email: ['email'] },
    conformIdTokenClaims: false, // the groups in the ID token itself, as Keycloak's mapper puts them
    jwks: JSON.parse(fs.readFileSync(jwksFile)),
    cookies: { keys: ['meshgate-test-cookies'] },
    pkce: { required: () => true },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message));
  https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, provider.callback())
    .listen(Number(port), host, () => console.log(`provider on ${issuer}`));
}

// A token of CLAIMS_JSON signed with the provider's key, or with a fresh
// key under the provider's kid (forge): what a forger would send.
async function token(jwksFile, claimsJson, forge) {
  const jose = await import('jose');
  const jwk = JSON.parse(fs.readFileSync(jwksFile)).keys[0];
  const key = forge ? (await jose.generateKeyPair('RS256')).privateKey : await jose.importJWK(jwk, 'RS256');
  const now = Math.floor(Date.now() / 1000);
  const claims = { iat: now, exp: now + 300, ...JSON.parse(claimsJson) };
  process.stdout.write(await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid }).sign(key));
}

// The employee: opens the address `meshgate up --login` printed (with the
// code in it), confirms the device, logs in, consents.
async function browse(url, login, shots) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'],
  });
  // the test's CA is not in chromium's store; the employee's browser is not
  // what is tested here (the gateway and the client verify the provider)
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  try {
    await page.goto(url);
    await page.screenshot({ path: `${shots}/1-confirm.png` });
    await page.click('button[autofocus][form="op.deviceConfirmForm"]');
    await page.waitForSelector('input[name=login]');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any');
    await page.screenshot({ path: `${shots}/2-login.png` });
    await page.click('button.login-submit');
    await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
    await page.screenshot({ path: `${shots}/3-consent.png` });
    await page.click('button.login-submit');
    await page.waitForFunction(() => document.title === 'Sign-in Success');
    await page.screenshot({ path: `${shots}/4-success.png` });
    console.log('browser: signed in and confirmed');
  } catch (err) {
    await page.screenshot({ path: `${shots}/failed.png` }).catch(() => {});
    console.error(`browser: ${err.message}\n${await page.content().catch(() => '')}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// An admin at the panel: "Sign in with SSO", logs in at the provider,
// consents, and lands back on the panel: prints "who: NAME (ROLE)" as the
// panel shows it, or "refused: ANSWER" when the gateway refuses.
async function signin(panel, login, shots) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'],
  });
  // the gateway's and the provider's CAs are the test's, not chromium's
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  const gateway = new URL(panel).origin;
  try {
    await page.goto(panel);
    await page.waitForSelector('#sso-link', { state: 'visible' });
    await page.screenshot({ path: `${shots}/admin-${login}-1-panel.png` });
    await page.click('#sso-link');
    await page.waitForSelector('input[name=login]');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any');
    await page.click('button.login-submit');
    await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
    await page.click('button.login-submit');
    await page.waitForURL((url) => url.origin === gateway);
    if (new URL(page.url()).pathname === '/auth/oidc/callback') {
      console.log(`refused: ${await page.textContent('body')}`);
    } else {
      await page.waitForSelector('#who', { state: 'visible' });
      console.log(`who: ${await page.textContent('#who')}`);
    }
    await page.screenshot({ path: `${shots}/admin-${login}-2-back.png` });
  } catch (err) {
    await page.screenshot({ path: `${shots}/admin-${login}-failed.png` }).catch(() => {});
    console.error(`browser: ${err.message}\n${await page.content().catch(() => '')}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

const commands = { keys, serve, token, browse, signin };
if (!commands[command]) {
  console.error('usage: idp.mjs keys|serve|token|browse|signin ...');
  process.exit(2);
}
await commands[command](...args);
