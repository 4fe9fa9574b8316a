import ArgumentParser
import Evaluation
import Foundation
import Training

/// Progress and diagnostics go to stderr; results to stdout.
let stderrLog = standardErrorLog

extension Architecture: ExpressibleByArgument {}
extension EvaluatedPathway: ExpressibleByArgument {}
extension Runtime.ConvPaths: ExpressibleByArgument {}
extension Runtime.Kernels: ExpressibleByArgument {}
extension PreparationLayout: ExpressibleByArgument {}
extension EncoderLayout: ExpressibleByArgument {}

/// How the engine runs: shared by every command that computes.
struct EngineFlags: ParsableArguments {
    @Option(help: "Threads of the engine (OpenBLAS runs single-threaded inside them).")
    var threads: Int = Runtime.cores
    @Option(help: .hidden) var convPaths: Runtime.ConvPaths = .fastest
    @Option(help: "Kernels: the widest this CPU has (auto), or AVX2's on any CPU (what an AVX2-only machine runs: OpenBLAS's Haswell kernels, no AVX-512 microkernel).")
    var kernels: Runtime.Kernels = .auto

    func validate() throws {
        guard threads > 0 else { throw ValidationError("--threads \(threads) must be at least 1") }
    }

    func apply() { Runtime.configure(threads: threads, convPaths: convPaths, kernels: kernels) }
}

/// `--set key=value` overrides of recipe keys: every command that takes a recipe has this group.
struct RecipeOverrides: ParsableArguments {
    @Option(name: .customLong("set"), help: "Override a recipe key, e.g. --set optim.steps=100 (repeatable; `maclr recipe` lists every key).")
    var overrides: [String] = []
}

/// A recipe file and `--set` overrides of its keys.
struct RecipeOptions: ParsableArguments {
    @Argument(help: "Recipe YAML file (`maclr recipe` lists every key).") var recipe: String
    @OptionGroup var set: RecipeOverrides

    func load() throws -> Recipe { try Recipe.load(recipe, overrides: set.overrides) }
}

/// `--splits 1,2,3`: one run per numbered split of the dataset (train1 / test1, ...).
struct SplitOptions: ParsableArguments {
    @Option(help: "Numbered splits to run over, e.g. 1,2,3 (train1 / test1, ...; the mean and standard deviation are reported).")
    var splits: String?

    var numbers: [Int] { splits.map { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } } ?? [] }

    func validate() throws {
        guard let splits else { return }
        let parts = splits.split(separator: ",")
        guard !parts.isEmpty, parts.count == numbers.count, numbers.allSatisfy({ (1...9).contains($0) }), Set(numbers).count == numbers.count else {
            throw ValidationError("--splits '\(splits)': expected distinct split numbers 1...9 separated by commas, e.g. 1,2,3")
        }
    }
}

/// Runs `work` under the clean-stop handling of long jobs, ending with its exit status.
func runLongWork(_ work: () throws -> Void) throws {
    if let status = try stoppingCleanlyOnSignals(work) { throw ExitCode(status) }
}
