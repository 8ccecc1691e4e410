#!/bin/sh
# The tree's C files against the committed .clang-format. Nothing to check is
# a failure, not a pass: outside a git checkout (a tarball, a copy) the list
# of files would be empty and the check would prove nothing.
#   format_check.sh SOURCE_DIR
set -eu
cd "$1"
if ! files=$(git ls-files '*.c' '*.h' 2>/dev/null); then
	echo "format_check: $1 is not a git checkout: cannot list the files to check" >&2
	exit 1
fi
if [ -z "$files" ]; then
	echo "format_check: git lists no C files in $1" >&2
	exit 1
fi
echo "$files" | xargs clang-format --dry-run -Werror
echo "format_check: $(echo "$files" | wc -l) files formatted"
