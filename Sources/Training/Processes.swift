import Cluster
import Foundation
import LongWork
import Tensor

/// The processes of a job: one, or the ranks `mpirun` (or Slurm's `srun`) started. Callers
/// above Training see MPI only through this.
public enum Processes {
    /// This job's processes (a one-process stand-in without a launcher).
    public static var world: Collective { Cluster.world }
    /// A single process, whatever launched this one.
    public static var single: Collective { SingleProcess() }
}

/// Where progress and diagnostics go: standard error, redrawn in place on a terminal.
public let standardErrorLog: @Sendable (String) -> Void = { ConsoleLog.standardError.write($0) }

/// Runs long work that stops cleanly on SIGTERM or SIGINT: the work saves what it has and throws
/// `Interrupted`, reported here in one line; the exit status is then 128 + signal (143, 130).
/// Returns the exit status to end with, or nil when the work finished.
public func stoppingCleanlyOnSignals(_ work: () throws -> Void) throws -> Int32? {
    StopRequests.shared.install()
    do {
        try work()
        return nil
    } catch let interrupted as Interrupted {
        ConsoleLog.standardError.write("maclr: \(interrupted)\n")
        return interrupted.exitStatus
    }
}

/// Under mpirun a process that fails must end the whole job (the others would wait for it in the
/// next collective): its error is printed once, by that process, and the job aborted. `work`
/// returns an exit status (nil: success), which aborts the job when it is not 0.
public func endingEveryProcessOnError(_ world: Collective, _ work: () throws -> Int32?) throws -> Int32? {
    guard world.size > 1 else { return try work() }
    do {
        if let status = try work(), status != 0 { Cluster.abort(status) }
        return nil
    } catch {
        ConsoleLog.standardError.write("Error (process \(world.rank) of \(world.size)): \(error)\n")
        Cluster.abort(1)
    }
}
