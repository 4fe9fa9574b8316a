#ifndef MACLR_CMPI_SHIM_H
#define MACLR_CMPI_SHIM_H
#include <mpi.h>
// MPI's communicators, datatypes and operations are macros over globals Swift cannot import;
// these inline functions give them to Swift as values.
static inline MPI_Comm maclr_MPI_COMM_WORLD(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype maclr_MPI_FLOAT(void) { return MPI_FLOAT; }
static inline MPI_Datatype maclr_MPI_DOUBLE(void) { return MPI_DOUBLE; }
static inline MPI_Datatype maclr_MPI_UINT64_T(void) { return MPI_UINT64_T; }
static inline MPI_Op maclr_MPI_SUM(void) { return MPI_SUM; }
static inline void *maclr_MPI_IN_PLACE(void) { return MPI_IN_PLACE; }
#endif
