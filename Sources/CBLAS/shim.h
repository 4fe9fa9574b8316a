#ifndef MACLR_CBLAS_SHIM_H
#define MACLR_CBLAS_SHIM_H
#include <cblas.h>
// OpenBLAS extensions (declared in its cblas.h on Debian, repeated here so the shim is explicit).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
#endif
