import Dispatch
import Foundation

/// SIGTERM (how Slurm and cloud schedulers preempt a job) and SIGINT (Ctrl-C) as requests to stop
/// at the next safe point: the trainer finishes its step and writes a checkpoint, prepare finishes
/// its video and leaves the open shard to be redone. A second signal stops at once.
public final class StopRequests: @unchecked Sendable {
    public static let shared = StopRequests()
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [DispatchSourceSignal] = []

    /// Routes SIGTERM and SIGINT here instead of ending the process.
    public func install() {
        lock.lock(); defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for s in [SIGTERM, SIGINT] {
            signal(s, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: s, queue: .global())
            source.setEventHandler { [weak self] in self?.receive(s) }
            source.resume()
            sources.append(source)
        }
    }

    func receive(_ s: Int32) {
        lock.lock()
        let again = received != nil
        if !again { received = s }
        lock.unlock()
        if again {
            try? FileHandle.standardError.write(contentsOf: Data("\n\(Interrupted.name(s)) again: stopping now; the work since the last checkpoint is lost\n".utf8))
            exit(128 + s)
        }
        try? FileHandle.standardError.write(contentsOf: Data("\n\(Interrupted.name(s)): stopping at the next safe point (send it again to stop at once)\n".utf8))
    }

    /// The signal received, if any.
    public var requested: Int32? {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    /// Throws `Interrupted` when a signal was received.
    public func check(_ whereStopped: @autoclosure () -> String) throws {
        if let s = requested { throw Interrupted(signal: s, detail: whereStopped()) }
    }

    /// For tests: forget a received signal.
    public func reset() { lock.lock(); received = nil; lock.unlock() }
}

/// Work stopped by SIGTERM or SIGINT after saving what it had; exit status 128 + signal.
public struct Interrupted: Error, CustomStringConvertible {
    public let signal: Int32
    public let detail: String
    public var exitStatus: Int32 { 128 + signal }
    public var description: String { "interrupted by \(Self.name(signal)): \(detail)" }

    public init(signal: Int32, detail: String) { self.signal = signal; self.detail = detail }

    static func name(_ s: Int32) -> String { s == SIGTERM ? "SIGTERM" : s == SIGINT ? "SIGINT" : "signal \(s)" }
}
