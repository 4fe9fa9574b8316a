import Foundation

/// Where progress and diagnostics go. On a terminal, a message that starts with "\r" redraws
/// the current line; anywhere else (a log file, CI, a Slurm output) such redraws become plain
/// lines, at most one every `interval` seconds plus the last state when the line ends, so a
/// long run's log stays readable instead of holding every redraw.
public final class ConsoleLog: @unchecked Sendable {
    let isTerminal: Bool
    let interval: Double
    let now: () -> Double
    let sink: (String) -> Void
    private let lock = NSLock()
    private var lastPlainLine = -Double.infinity
    /// The newest redraw not yet written as a plain line.
    private var pending: String?

    public init(isTerminal: Bool, interval: Double = 5, now: @escaping () -> Double = { Date().timeIntervalSinceReferenceDate },
                sink: @escaping (String) -> Void) {
        self.isTerminal = isTerminal; self.interval = interval; self.now = now; self.sink = sink
    }

    /// Standard error, redrawn in place only when it is a terminal.
    public static let standardError = ConsoleLog(isTerminal: isatty(STDERR_FILENO) != 0) {
        try? FileHandle.standardError.write(contentsOf: Data($0.utf8))
    }

    public func write(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        if isTerminal { sink(text); return }
        guard text.hasPrefix("\r") else {
            // a newline ends a progress line: its last state is written once
            if text.hasPrefix("\n"), let line = pending { sink(line + "\n"); pending = nil; lastPlainLine = now() }
            let rest = text.hasPrefix("\n") ? String(text.dropFirst()) : text
            if !rest.isEmpty { sink(rest) }
            return
        }
        var line = String(text.dropFirst())
        while line.last == " " { line.removeLast() }
        let ends = line.hasSuffix("\n")
        if ends { line.removeLast() }
        let t = now()
        if ends || t - lastPlainLine >= interval {
            sink(line + "\n"); pending = nil; lastPlainLine = t
        } else {
            pending = line
        }
    }
}

/// A duration as progress lines show it: 1h05m, 3m07s.
public func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}
