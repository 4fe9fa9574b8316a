#ifndef MACLR_CCAIRO_SHIM_H
#define MACLR_CCAIRO_SHIM_H
// Cairo's API is plain functions and enums: Swift imports it as it is.
#include <cairo/cairo.h>
#endif
