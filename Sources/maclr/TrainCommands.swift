import ArgumentParser
import Evaluation
import Foundation
import Sweeps
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
    @Flag(help: "Evaluate the final encoder (linear probe, retrieval, kNN) when training ends.") var eval = false
    @OptionGroup var engine: EngineFlags

    func run() throws {
        engine.apply()
        let world = Processes.world
        let status = try endingEveryProcessOnError(world) {
            try stoppingCleanlyOnSignals {
                let (folder, report) = try pretrainAndEvaluate(try recipe.load(), fresh: fresh, evaluate: eval, collective: world, log: stderrLog)
                guard world.rank == 0 else { return }
                print("\(folder.url.path): encoder in \(folder.encoder.path)")
                if let report { print(report.summary) }
            }
        }
        if let status { throw ExitCode(status) }
    }
}

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a visual encoder and a linear classifier on a labelled split, then test it (class scores averaged over the views).",
        discussion: """
            The recipe (Recipes/finetune.yaml) trains with the labels of data.split and tests on \
            eval.split_test; --from sets model.init_from. Checkpoints, resume, SIGTERM, metrics.jsonl, \
            TensorBoard events and mpirun work as in pretrain. --splits 1,2,3 fine-tunes on train1 / \
            test1, train2 / test2, ... (a dataset prepared with --layout ucf101 or hmdb51), each in \
            train.output/split-K, and reports the mean and standard deviation.
            """)
    @OptionGroup var recipe: RecipeOptions
    @Option(help: "The encoder to start from: a run or checkpoint folder of maclr pretrain, or an encoder .safetensors (maclr export's, or a state dict in torchvision's, pytorchvideo's or mmaction2's names).")
    var from: String?
    @Flag(help: "Start from a random init (the from-scratch baseline), whatever the recipe's model.init_from.") var scratch = false
    @OptionGroup var splits: SplitOptions
    @Flag(help: "Start over: delete the run folder's checkpoints and metrics.") var fresh = false
    @OptionGroup var engine: EngineFlags

    func validate() throws {
        guard !(scratch && from != nil) else { throw ValidationError("give --from or --scratch, not both") }
    }

    func run() throws {
        engine.apply()
        var base = try recipe.load()
        if let from { try base.set("model.init_from", from) }
        if scratch { try base.set("model.init_from", "") }
        let world = Processes.world
        let status = try endingEveryProcessOnError(world) {
            try stoppingCleanlyOnSignals {
                let reports = try SplitAverage.run(base, splits: splits.numbers) { recipe in
                    let (folder, report) = try finetuneAndTest(recipe, fresh: fresh, collective: world, log: stderrLog)
                    if let report { print("\(folder.url.path): \(report.summary)") }
                    return report.map { ["top1": $0.top1, "top5": $0.top5] }
                }
                if let line = SplitAverage.summary(reports, metrics: ["top1", "top5"]) { print(line) }
            }
        }
        if let status { throw ExitCode(status) }
    }
}

/// Which encoder a command works on.
struct EncoderOptions: ParsableArguments {
    @Option(help: "A run folder or checkpoint folder of maclr pretrain.") var checkpoint: String?
    @Option(help: "An encoder .safetensors: maclr export's, or a state dict in torchvision's, pytorchvideo's or mmaction2's names.") var encoder: String?
    @Option(help: "A recipe: its randomly initialised encoder (the floor), or the settings for --encoder.") var recipe: String?
    @OptionGroup var set: RecipeOverrides
    @Option(help: "Dataset folder (default: the recipe's data.dataset).") var dataset: String?
    @Option(help: "Which encoder: visual (what pretraining is for), or motion (the Motion pathway on its own input, from --checkpoint or --recipe).")
    var pathway: EvaluatedPathway = .visual

    func validate() throws {
        guard [checkpoint, encoder, recipe].contains(where: { $0 != nil }) else {
            throw ValidationError("give --checkpoint RUN, --encoder FILE or --recipe FILE (random init)")
        }
        guard !(checkpoint != nil && encoder != nil) else { throw ValidationError("give --checkpoint or --encoder, not both") }
    }

    var selection: EncoderSelection {
        EncoderSelection(checkpoint: checkpoint, encoderFile: encoder, recipePath: recipe, overrides: set.overrides, dataset: dataset, pathway: pathway)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Linear probe (top-1, top-5), retrieval (R@1/5/10/20/50) and weighted kNN (top-1) of a frozen visual encoder on a labelled dataset.",
        discussion: """
            Features are averaged over eval.clips_per_video clips x eval.crops_per_clip crops per video. \
            --splits 1,2,3 evaluates on train1 / test1, train2 / test2, ... and reports the mean and \
            standard deviation. --views is the motion test: the test clips as they are, with their \
            frames shuffled, with their middle frame repeated (frozen) and played backwards, each \
            against the normal train features; an encoder that uses motion falls on shuffled and \
            frozen clips, one that reads appearance does not.
            """)
    @OptionGroup var source: EncoderOptions
    @OptionGroup var splits: SplitOptions
    @Option(help: "Write the figures to this JSON file (with --splits, one per split: FILE-split-K.json).") var json: String?
    @Flag(help: "The motion test: normal, shuffled, frozen and reversed test clips, and each one's change from normal.") var views = false
    @OptionGroup var engine: EngineFlags

    func validate() throws {
        if views && splits.splits != nil { throw ValidationError("--views runs on the recipe's eval splits; drop --splits") }
    }

    func run() throws {
        engine.apply()
        if views {
            let report = try source.selection.evaluateViews(log: stderrLog)
            print(report.table)
            if let json { try report.write(to: URL(fileURLWithPath: json)) }
            return
        }
        let numbers = splits.numbers
        var runs: [[String: Double]] = []
        for split in numbers.isEmpty ? [nil] : numbers.map(Optional.some) {
            var selection = source.selection
            selection.split = split
            let report = try selection.evaluate(log: stderrLog)
            print((split.map { "split \($0): " } ?? "") + report.summary)
            if let json {
                try report.write(to: URL(fileURLWithPath: split.map { (json as NSString).deletingPathExtension + "-split-\($0).json" } ?? json))
            }
            runs.append(["probe_top1": report.top1, "retrieval_r1": report.recallAt1, "knn_top1": report.knnTop1 ?? .nan])
        }
        if let line = SplitAverage.summary(runs, metrics: ["probe_top1", "retrieval_r1", "knn_top1"]) { print(line) }
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
        abstract: "Write a visual encoder to safetensors in torchvision's, pytorchvideo's or mmaction2's names.",
        discussion: """
            --layout torchvision (default): torchvision.models.video's names, so PyTorch loads the
            file with load_state_dict(strict=True) (fc aside). pytorchvideo: the names of its Net of
            a ResNetBasicStem and ResStages of ResBlocks (branch2 conv_a / conv_b; Conv2plus1d
            with conv_xy first for R(2+1)D). mmaction2: its ResNet3d backbone's names (depth 18,
            with_pool1=False, temporal_strides=(1, 2, 2, 2)), for R3D-18 only. With --checkpoint,
            the trained encoder of a run; without, the randomly initialised encoder of the given
            seed (the floor). maclr reads files in any of these layouts back (eval --encoder,
            model.init_from) from their names and shapes.
            """)

    @Option(help: "A run folder or checkpoint folder of maclr pretrain.") var checkpoint: String?
    @Option(help: "Network of the random init.") var arch: Architecture = .r2plus1d18
    @Option(help: "Width multiplier of the random init (1 is torchvision's network).") var width: Double = 1
    @Option(help: "Seed of the random init.") var seed: UInt64 = 0
    @Option(help: "Whose tensor names to write.") var layout: EncoderLayout = .torchvision
    @Option(help: "Output .safetensors file.") var output: String

    func validate() throws {
        guard width > 0 else { throw ValidationError("--width must be positive, got \(width)") }
    }

    func run() throws {
        if let checkpoint {
            print(try EncoderExport.trained(checkpoint: checkpoint, layout: layout, to: output))
        } else {
            print(try EncoderExport.randomInit(arch: arch, width: width, seed: seed, layout: layout, to: output))
        }
    }
}

struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipe", abstract: "List recipe keys, or show a recipe resolved.")
    @Argument(help: "A recipe to resolve (omit to list every key with its default and valid values).") var recipe: String?
    @OptionGroup var set: RecipeOverrides
    @Flag(help: "List the keys as a Markdown table (README's recipe table).") var markdown = false
    @Flag(inversion: .prefixedNo, help: "Estimate the recipe's peak memory (one small training step, on stderr).") var memory = true

    func run() throws {
        if let recipe {
            let resolved = try Recipe.load(recipe, overrides: set.overrides)
            print(String(decoding: try resolved.json(), as: UTF8.self))
            if memory {
                Runtime.configure(threads: 1)
                let estimate = try MemoryEstimate.of(resolved)
                let available = MemoryEstimate.availableBytes().map { String(format: "; %.1f GiB available now", Double($0) / Double(1 << 30)) } ?? ""
                stderrLog(estimate.summary + available + "\n")
            }
            return
        }
        print(markdown ? RecipeKey.markdownTable : RecipeKey.textTable)
    }
}

/// `--shard i/N`: this process takes every N-th run from the i-th.
struct ShardSpec: ExpressibleByArgument {
    let index: Int, count: Int
    init?(argument: String) {
        let parts = argument.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (1...n).contains(i) else { return nil }
        index = i; count = n
    }
}

struct Ablate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a sweep of recipe variants x seeds (pretrain, then evaluate), resumable and splittable, and report it.",
        discussion: """
            Each run gets its own folder under the sweep's output (runs/VARIANT/seed-N). Complete \
            runs are skipped, interrupted ones resume from their checkpoints, a failed run is \
            listed with its error while the others go on (the exit status is then 1). After every \
            finished run results.csv, results.json, results.md, PNG plots and report.html are \
            rewritten from every complete run. --shard i/N splits a sweep over processes or \
            machines sharing the output folder (a Slurm array: --shard $((SLURM_ARRAY_TASK_ID+1))/N).
            """)
    @Argument(help: "Sweep YAML file (see Recipes/ablations/).") var sweep: String
    @OptionGroup var set: RecipeOverrides
    @Option(help: "Run every N-th run from the i-th (i/N).") var shard: ShardSpec?
    @Option(help: "Folder of the runs and reports instead of the sweep's 'output' (the same sweep on another dataset).") var output: String?
    @Option(help: "Seeds instead of the sweep file's, e.g. 0,1 (fewer to try a sweep, more to tighten it).") var seeds: String?
    @Flag(help: "List the runs with their estimated cost (a few timed steps of each variant), run nothing.") var dryRun = false
    @Flag(help: "Only gather the complete runs into the reports.") var report = false
    @OptionGroup var engine: EngineFlags

    func validate() throws {
        guard !(dryRun && report) else { throw ValidationError("give --dry-run or --report, not both") }
        if let seeds, seedList == nil { throw ValidationError("--seeds '\(seeds)': expected distinct integers 0...\(UInt32.max) separated by commas, e.g. 0,1,2") }
    }

    /// `--seeds` as numbers; nil when absent or malformed.
    var seedList: [Int]? {
        guard let seeds else { return nil }
        let parts = seeds.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && (0...Int(UInt32.max)).contains($0!) }), Set(parts).count == parts.count else { return nil }
        return parts.map { $0! }
    }

    func run() throws {
        engine.apply()
        let loaded = try Sweep.load(sweep, overrides: set.overrides, output: output, seeds: seedList)
        let ablation = try Ablation(sweep: loaded, shard: shard?.index ?? 1, of: shard?.count ?? 1)
        if report {
            let counts = try AblationReport.write(loaded)
            print("\(loaded.output.path)/results.md: \(counts.complete) runs complete, \(counts.failed) failed, \(counts.pending) pending")
            return
        }
        if dryRun {
            ablation.printEstimates(out: { print($0) })
            return
        }
        var ran: Ablation.Outcome?
        try runLongWork { ran = try ablation.run(log: stderrLog) }
        guard let outcome = ran else { return }
        print("\(loaded.output.path)/results.md: \(outcome.completed.count) runs completed, \(outcome.skipped.count) already complete, \(outcome.busy.count) held by another process, \(outcome.failed.count) failed")
        for f in outcome.failed { print("failed: \(f.run): \(f.error)") }
        if !outcome.failed.isEmpty { throw ExitCode(1) }
    }
}

struct SaliencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saliency",
        abstract: "Draw where a visual encoder looks (MCL's saliency map) over a video's frames, beside its flow's motion boundaries.",
        discussion: """
            The map is the gradient of the cosine between the features of the video's first and \
            last clips with respect to a conv's output (--layer, default the last), Grad-CAM \
            weighted and ReLU'd. Writes OUTPUT/frame-NNN.png (map left, motion boundaries right, \
            over the first clip's frames) and OUTPUT/saliency.gif.
            """)
    @OptionGroup var source: EncoderOptions
    @Option(help: "The dataset entry (video name, as `maclr inspect` lists them) to draw.") var video: String
    @Option(help: "Output folder.") var output: String
    @Option(help: "The conv, by torchvision's name (e.g. layer4.0.conv2); default the last.") var layer: String?
    @Option(help: "Pixels per clip pixel in the pictures.") var scale = 4
    @OptionGroup var engine: EngineFlags

    func validate() throws {
        guard (1...16).contains(scale) else { throw ValidationError("--scale \(scale) must be 1...16") }
    }

    func run() throws {
        engine.apply()
        var pictures = SaliencyPictures(selection: source.selection, video: video, output: URL(fileURLWithPath: output), layer: layer)
        pictures.scale = scale
        let result = try pictures.write()
        print("wrote \(result.files.count - 1) PNG frames and \(result.files.last!.path); \(String(format: "%.0f", 100 * result.massOnMotion)) % of the map's mass lies where the motion boundaries are above their mean (\(String(format: "%.0f", 100 * result.motionArea)) % of the pixels)")
    }
}
