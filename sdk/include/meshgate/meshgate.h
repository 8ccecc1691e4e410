/* The meshgate plugin SDK: include this one header. */
#ifndef MESHGATE_H
#define MESHGATE_H

#include <meshgate/plugin.h>
#include <meshgate/api.h>

#endif
