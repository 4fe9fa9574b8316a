import ArgumentParser
import Cluster
import Foundation
import Tensor
import Training

/// Progress and diagnostics go to stderr; results to stdout.
let stderrLog: @Sendable (String) -> Void = { ConsoleLog.standardError.write($0) }

extension Architecture: ExpressibleByArgument {}
extension EvaluatedPathway: ExpressibleByArgument {}
extension Runtime.ConvPaths: ExpressibleByArgument {}

/// How the engine runs: shared by every command that computes.
struct EngineFlags: ParsableArguments {
    @Option(help: "Threads of the engine (OpenBLAS runs single-threaded inside them).")
    var threads: Int = Runtime.cores
    @Option(help: .hidden) var convPaths: Runtime.ConvPaths = .fastest

    func validate() throws {
        guard threads > 0 else { throw ValidationError("--threads \(threads) must be at least 1") }
    }

    func apply() { Runtime.configure(threads: threads, convPaths: convPaths) }
}

/// A recipe file and `--set` overrides of its keys.
struct RecipeOptions: ParsableArguments {
    @Argument(help: "Recipe YAML file (`maclr recipe` lists every key).") var recipe: String
    @Option(name: .customLong("set"), help: "Override a key, e.g. --set optim.steps=100 (repeatable).") var overrides: [String] = []

    func load() throws -> Recipe { try Recipe.load(recipe, overrides: overrides) }
}

/// Runs long work that stops cleanly on SIGTERM or SIGINT: the work saves what it has and throws
/// `Interrupted`, reported here in one line with exit status 128 + signal (143, 130).
func stoppingCleanlyOnSignals(_ work: () throws -> Void) throws {
    StopRequests.shared.install()
    do {
        try work()
    } catch let interrupted as Interrupted {
        ConsoleLog.standardError.write("maclr: \(interrupted)\n")
        throw ExitCode(interrupted.exitStatus)
    }
}

/// Under mpirun a process that fails must end the whole job (the others would wait for it in the
/// next collective): its error is printed once, by that process, and the job aborted.
func endingEveryProcessOnError(_ world: Collective, _ work: () throws -> Void) throws {
    guard world.size > 1 else { return try work() }
    do {
        try work()
    } catch let exit as ExitCode {
        if exit.rawValue != 0 { Cluster.abort(exit.rawValue) }
    } catch {
        ConsoleLog.standardError.write("Error (process \(world.rank) of \(world.size)): \(error)\n")
        Cluster.abort(1)
    }
}
