import CFFmpeg
import Foundation

/// A video that cannot be opened, decoded or written: names the file and FFmpeg's reason.
public struct VideoError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// FFmpeg's message for an error code (av_err2str is a macro Swift cannot call).
func ffmpegMessage(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    av_strerror(code, &buffer, buffer.count)
    return String(cString: buffer)
}

/// FFmpeg logs to stderr by default; only errors are worth a user's attention, and we report
/// those ourselves, naming the file.
let quietFFmpeg: Void = { av_log_set_level(AV_LOG_FATAL) }()
