import ArgumentParser
import Backbones
import DataHDF5
import Foundation
import Tensor
import Training

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain with a recipe: checkpoints, automatic resume, progress, metrics.jsonl.",
        discussion: """
            Rerunning the same command resumes from the newest checkpoint in the run folder \
            (train.output), after checking that the recipe matches. `maclr recipe` lists every key.
            """)
    @Argument(help: "Recipe YAML file.") var recipe: String
    @Option(name: .customLong("set"), help: "Override a key, e.g. --set optim.steps=100 (repeatable).") var overrides: [String] = []
    @Flag(help: "Start over: delete the run folder's checkpoints and metrics.") var fresh = false
    @Option(help: "Threads (ours; OpenBLAS runs single-threaded inside them).") var threads = 2
    @Flag(help: "Evaluate the final encoder (linear probe, retrieval) when training ends.") var eval = false

    func run() throws {
        Engine.setThreads(threads)
        let r = try Recipe.load(recipe, overrides: overrides)
        let trainer = try Trainer(recipe: r, fresh: fresh)
        try trainer.run(log: stderrLog)
        print("\(trainer.runFolder.path): step \(trainer.step), encoder in \(trainer.runFolder.path)/encoder.safetensors")
        if eval {
            let net = try Evaluation.loadEncoder(checkpoint: trainer.runFolder.path, encoderFile: nil, recipe: r)
            let ds = try ShardDataset(folder: URL(fileURLWithPath: r.string("data.dataset")))
            let report = try Evaluation.run(encoder: { net.features($0) }, dataset: ds, recipe: r, log: stderrLog)
            try printReport(report, to: trainer.runFolder.appendingPathComponent("eval.json"))
        }
    }
}

func printReport(_ r: Evaluation.Report, to file: URL?) throws {
    print(String(format: "linear probe: top-1 %.1f%%, top-5 %.1f%% | retrieval: R@1 %.1f%%, R@5 %.1f%%, R@10 %.1f%% (%d train / %d test videos, %d classes)",
                 100 * r.top1, 100 * r.top5, 100 * r.recallAt1, 100 * r.recallAt5, 100 * r.recallAt10, r.trainVideos, r.testVideos, r.classes))
    if let file {
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(r).write(to: file)
    }
}

/// Which encoder a command works on.
struct EncoderSource: ParsableArguments {
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

    func resolve() throws -> (Recipe, VideoResNet, ShardDataset) {
        var r: Recipe
        if let recipe { r = try Recipe.load(recipe) }
        else if let checkpoint { r = try Evaluation.recipe(ofCheckpoint: checkpoint) }
        else { r = Recipe() }
        try r.apply(overrides: overrides)
        if let dataset { r.set("data.dataset", dataset) }
        let net = try Evaluation.loadEncoder(checkpoint: checkpoint, encoderFile: encoder, recipe: r)
        let ds = try ShardDataset(folder: URL(fileURLWithPath: r.string("data.dataset")))
        return (r, net, ds)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Linear probe (top-1, top-5) and retrieval (R@1/5/10) of a frozen visual encoder on a labelled dataset.")
    @OptionGroup var source: EncoderSource
    @Option(help: "Write the figures to this JSON file.") var json: String?
    @Option(help: "Threads.") var threads = 2

    func run() throws {
        Engine.setThreads(threads)
        let (r, net, ds) = try source.resolve()
        let report = try Evaluation.run(encoder: { net.features($0) }, dataset: ds, recipe: r, log: stderrLog)
        try printReport(report, to: json.map { URL(fileURLWithPath: $0) })
    }
}

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write frozen visual-encoder features of a split to HDF5 (/features, /names, /labels).")
    @OptionGroup var source: EncoderSource
    @Option(help: "Split to extract.") var split = "test"
    @Option(help: "Output .h5 file.") var output: String

    func run() throws {
        let (r, net, ds) = try source.resolve()
        let f = try Evaluation.features(encoder: { net.features($0) }, dataset: ds, split: split, sampling: r.sampling,
                                        clipsPerVideo: r.int("eval.clips_per_video"), log: stderrLog)
        try FeatureFile.write(path: output, features: f.values, dimension: f.dimension, names: f.names, labels: f.labels,
                              attributes: ["split": split, "arch": r.string("model.arch"), "dataset": r.string("data.dataset")])
        print("wrote \(output): \(f.count) x \(f.dimension) features")
    }
}

struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipe", abstract: "List recipe keys, or show a recipe resolved.")
    @Argument(help: "A recipe to resolve (omit to list every key with its default).") var recipe: String?

    func run() throws {
        if let recipe {
            let r = try Recipe.load(recipe)
            print(String(decoding: try r.json(), as: UTF8.self))
            return
        }
        func padded(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        for spec in RecipeKey.all {
            print(padded(spec.key, 32) + " " + padded("\(spec.defaultValue)", 24) + " " + spec.doc)
        }
    }
}
