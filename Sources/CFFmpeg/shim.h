#ifndef MACLR_CFFMPEG_SHIM_H
#define MACLR_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
// Function-like and expression macros Swift cannot import.
static inline int maclr_AVERROR(int e) { return AVERROR(e); }
static inline int maclr_AVERROR_EOF(void) { return AVERROR_EOF; }
static inline int maclr_AVERROR_EAGAIN(void) { return AVERROR(EAGAIN); }
static inline int64_t maclr_AV_NOPTS_VALUE(void) { return AV_NOPTS_VALUE; }
static inline AVRational maclr_AV_TIME_BASE_Q(void) { return AV_TIME_BASE_Q; }
#endif
