import ArgumentParser
import Foundation
import Training

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain with a recipe: checkpoints, automatic resume, progress, metrics.jsonl and TensorBoard events.",
        discussion: """
            Rerunning the same command resumes from the newest checkpoint in the run folder \
            (train.output), after checking that the recipe matches. `maclr recipe` lists every key.
            """)
    @OptionGroup var recipe: RecipeOptions
    @Flag(help: "Start over: delete the run folder's checkpoints and metrics.") var fresh = false
    @Flag(help: "Evaluate the final encoder (linear probe, retrieval) when training ends.") var eval = false
    @OptionGroup var engine: EngineFlags

    func run() throws {
        engine.apply()
        let result = try pretrain(try recipe.load(), fresh: fresh, evaluate: eval, log: stderrLog)
        print("\(result.runFolder.path): step \(result.step), encoder in \(result.runFolder.path)/encoder.safetensors")
        if let report = result.report { print(report.summary) }
    }
}

/// Which encoder a command works on.
struct EncoderOptions: ParsableArguments {
    @Option(help: "A run folder or checkpoint folder of maclr pretrain.") var checkpoint: String?
    @Option(help: "An encoder .safetensors written by maclr export.") var encoder: String?
    @Option(help: "A recipe: its randomly initialised encoder (the floor), or the settings for --encoder.") var recipe: String?
    @Option(name: .customLong("set"), help: "Override a recipe key (repeatable).") var overrides: [String] = []
    @Option(help: "Dataset folder (default: the recipe's data.dataset).") var dataset: String?

    func validate() throws {
        guard [checkpoint, encoder, recipe].contains(where: { $0 != nil }) else {
            throw ValidationError("give --checkpoint RUN, --encoder FILE or --recipe FILE (random init)")
        }
        guard !(checkpoint != nil && encoder != nil) else { throw ValidationError("give --checkpoint or --encoder, not both") }
    }

    var selection: EncoderSelection {
        EncoderSelection(checkpoint: checkpoint, encoderFile: encoder, recipePath: recipe, overrides: overrides, dataset: dataset)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Linear probe (top-1, top-5) and retrieval (R@1/5/10) of a frozen visual encoder on a labelled dataset.")
    @OptionGroup var source: EncoderOptions
    @Option(help: "Write the figures to this JSON file.") var json: String?
    @OptionGroup var engine: EngineFlags

    func run() throws {
        engine.apply()
        let report = try source.selection.evaluate(log: stderrLog)
        print(report.summary)
        if let json { try report.write(to: URL(fileURLWithPath: json)) }
    }
}

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write frozen visual-encoder features of a split to HDF5 (/features, /names, /labels).")
    @OptionGroup var source: EncoderOptions
    @Option(help: "Split to extract.") var split = "test"
    @Option(help: "Output .h5 file.") var output: String
    @OptionGroup var engine: EngineFlags

    func run() throws {
        engine.apply()
        let written = try source.selection.extractFeatures(split: split, to: output, log: stderrLog)
        print("wrote \(output): \(written.count) x \(written.dimension) features")
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a visual encoder to torchvision-compatible safetensors.",
        discussion: """
            Names and layouts follow torchvision.models.video, so PyTorch loads the file with
            load_state_dict(strict=True) (fc aside). With --checkpoint, the trained encoder of a
            run; without, the randomly initialised encoder of the given seed (the floor).
            """)

    @Option(help: "A run folder or checkpoint folder of maclr pretrain.") var checkpoint: String?
    @Option(help: "Network of the random init.") var arch: Architecture = .r2plus1d18
    @Option(help: "Width multiplier of the random init (1 is torchvision's network).") var width: Double = 1
    @Option(help: "Seed of the random init.") var seed: UInt64 = 0
    @Option(help: "Output .safetensors file.") var output: String

    func validate() throws {
        guard width > 0 else { throw ValidationError("--width must be positive, got \(width)") }
    }

    func run() throws {
        if let checkpoint {
            print(try EncoderExport.trained(checkpoint: checkpoint, to: output))
        } else {
            print(try EncoderExport.randomInit(arch: arch, width: width, seed: seed, to: output))
        }
    }
}

struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipe", abstract: "List recipe keys, or show a recipe resolved.")
    @Argument(help: "A recipe to resolve (omit to list every key with its default and valid values).") var recipe: String?
    @Option(name: .customLong("set"), help: "Override a key (repeatable).") var overrides: [String] = []

    func run() throws {
        if let recipe {
            print(String(decoding: try Recipe.load(recipe, overrides: overrides).json(), as: UTF8.self))
            return
        }
        func padded(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        for spec in RecipeKey.all {
            print(padded(spec.key, 30) + " " + padded(spec.defaultText, 26) + " " + spec.doc + " (" + spec.validText + ")")
        }
    }
}
