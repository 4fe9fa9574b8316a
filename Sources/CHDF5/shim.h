#ifndef MACLR_CHDF5_SHIM_H
#define MACLR_CHDF5_SHIM_H
#include <hdf5.h>
// HDF5's type and property ids are macros that expand to function calls or globals Swift cannot
// import; these inline functions give them to Swift as plain hid_t values.
static inline hid_t maclr_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t maclr_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline hid_t maclr_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t maclr_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t maclr_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t maclr_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t maclr_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t maclr_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t maclr_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t maclr_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t maclr_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t maclr_H5P_GROUP_CREATE(void) { return H5P_GROUP_CREATE; }
static inline unsigned maclr_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned maclr_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline unsigned maclr_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline hsize_t maclr_H5S_UNLIMITED(void) { return H5S_UNLIMITED; }
#endif
