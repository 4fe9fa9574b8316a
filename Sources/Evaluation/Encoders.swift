import Backbones
import DataHDF5
import Foundation
import Pathways
import Tensor
import Training

/// The visual encoder's network family, as `--arch` names it.
public typealias Architecture = VideoResNetKind
/// Whose tensor names an encoder file uses, as `--layout` names it.
public typealias EncoderLayout = WeightLayout

/// The encoder a command works on: a run or checkpoint folder, an exported .safetensors, or the
/// random init of a recipe (the floor), with the recipe's settings and dataset.
public struct EncoderSelection {
    public var checkpoint: String?, encoderFile: String?, recipePath: String?
    public var overrides: [String] = []
    public var dataset: String?
    public var pathway: EvaluatedPathway
    /// A numbered split (train<k> / test<k>) to evaluate on instead of the recipe's eval splits.
    public var split: Int?

    public init(checkpoint: String?, encoderFile: String?, recipePath: String?, overrides: [String], dataset: String?,
                pathway: EvaluatedPathway = .visual) {
        self.checkpoint = checkpoint; self.encoderFile = encoderFile; self.recipePath = recipePath
        self.overrides = overrides; self.dataset = dataset; self.pathway = pathway
    }

    func recipe() throws -> Recipe {
        var r: Recipe
        if let recipePath { r = try Recipe.load(recipePath) }
        else if let checkpoint { r = try Checkpoint(path: checkpoint).recipe }
        else { r = Recipe.defaults }
        try r.apply(overrides: overrides)
        if let dataset { try r.set("data.dataset", dataset) }
        if let split { r = try SplitAverage.recipe(r, split: split) }
        return r
    }

    /// The recipe, the visual encoder and the dataset.
    func resolveVisual() throws -> (Recipe, VideoResNet, ShardDataset) {
        let r = try recipe()
        let net = try Evaluation.loadEncoder(checkpoint: checkpoint, encoderFile: encoderFile, recipe: r)
        return (r, net, try ShardDataset(folder: URL(fileURLWithPath: r.data.dataset)))
    }

    /// The recipe, the chosen encoder's features (N, d) of its input clips, and the dataset.
    func resolve() throws -> (Recipe, (Tensor) -> Tensor, ShardDataset) {
        switch pathway {
        case .visual:
            let (r, net, ds) = try resolveVisual()
            return (r, { net.features($0) }, ds)
        case .motion:
            guard encoderFile == nil else { throw TrainingError("--pathway motion needs --checkpoint or --recipe: an exported encoder holds the visual pathway only") }
            let r = try recipe()
            let motion = try Evaluation.loadMotionPathway(checkpoint: checkpoint, recipe: r)
            let ds = try ShardDataset(folder: URL(fileURLWithPath: r.data.dataset))
            guard ds.hasFlow || r.data.motionInput == .frameDifference else {
                throw TrainingError("\(r.data.dataset): no flow (prepared with --no-flow), which data.motion_input=\(r.data.motionInput.rawValue) needs")
            }
            return (r, { motion.features($0) }, ds)
        }
    }

    /// `maclr eval`: linear probe, retrieval and kNN.
    public func evaluate(log: (String) -> Void) throws -> Evaluation.Report {
        let (r, encoder, ds) = try resolve()
        return try Evaluation.run(encoder: encoder, dataset: ds, recipe: r, motion: pathway == .motion, log: log)
    }

    /// `maclr eval --views`: the motion test (normal, shuffled, frozen and reversed test clips).
    public func evaluateViews(log: (String) -> Void) throws -> Evaluation.ViewsReport {
        let (r, encoder, ds) = try resolve()
        return try Evaluation.runViews(encoder: encoder, dataset: ds, recipe: r, motion: pathway == .motion, log: log)
    }

    /// `maclr extract`: features of `split` to an HDF5 file; returns (videos, dimension).
    public func extractFeatures(split: String, to output: String, log: (String) -> Void) throws -> (count: Int, dimension: Int) {
        let (r, encoder, ds) = try resolve()
        let f = try Evaluation.features(encoder: encoder, dataset: ds, split: split, sampling: r.sampling,
                                        clipsPerVideo: r.eval.clipsPerVideo, motion: pathway == .motion, log: log)
        try FeatureFile.write(path: output, features: f.values, dimension: f.dimension, names: f.names, labels: f.labels,
                              attributes: ["split": split, "arch": r.model.arch.rawValue, "dataset": r.data.dataset, "pathway": pathway.rawValue])
        return (f.count, f.dimension)
    }
}

/// Which encoder `maclr eval` and `maclr extract` read: the visual one (what pretraining is for)
/// or the Motion pathway's, on its own input (how much of the classes the motion teacher holds).
public enum EvaluatedPathway: String, CaseIterable, Sendable { case visual, motion }

/// `maclr export`: a visual encoder to safetensors in torchvision's, pytorchvideo's or
/// mmaction2's names (`WeightLayout`). Returns a summary line.
public enum EncoderExport {
    /// The trained encoder of a run or checkpoint folder.
    public static func trained(checkpoint: String, layout: WeightLayout = .torchvision, to output: String) throws -> String {
        let saved = try Checkpoint(path: checkpoint)
        let net = try Evaluation.loadEncoder(from: saved)
        return try write(net, layout: layout, metadata: ["source": saved.folder.path], to: output)
    }

    /// The randomly initialised encoder of `seed` (the floor).
    public static func randomInit(arch: Architecture, width: Double, seed: UInt64, layout: WeightLayout = .torchvision, to output: String) throws -> String {
        let net = VideoResNet(VideoResNetConfig(kind: arch, width: width), seed: seed)
        return try write(net, layout: layout, metadata: ["seed": "\(seed)", "source": "maclr random init"], to: output)
    }

    static func write(_ net: VideoResNet, layout: WeightLayout, metadata: [String: String], to output: String) throws -> String {
        guard let state = net.stateDict(layout: layout) else {
            throw TrainingError("--layout \(layout.rawValue): \(layout.rawValue) has no \(net.config.kind.rawValue) (its ResNet2Plus1d has another stem); use torchvision or pytorchvideo")
        }
        let meta = VisualEncoder.metadata(for: net.config, layout: layout).merging(metadata) { $1 }
        try SafeTensors.write(state, metadata: meta, to: URL(fileURLWithPath: output))
        return "wrote \(output): \(net.config.kind.rawValue), width \(net.config.width), \(net.parameterCount) parameters, \(layout.rawValue)'s names"
    }
}

extension Evaluation.Report {
    /// One line: probe, retrieval and kNN figures.
    public var summary: String {
        func percent(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "-" }
        return String(format: "linear probe: top-1 %.1f%%, top-5 %.1f%% | retrieval: R@1 %.1f%%, R@5 %.1f%%, R@10 %.1f%%, R@20 %@, R@50 %@ | kNN: top-1 %@ (%d train / %d test videos, %d classes, %d views each)",
                      100 * top1, 100 * top5, 100 * recallAt1, 100 * recallAt5, 100 * recallAt10, percent(recallAt20), percent(recallAt50),
                      percent(knnTop1), trainVideos, testVideos, classes, views ?? 1)
    }

    public func write(to file: URL) throws { try writeJSON(self, to: file) }
}

extension Evaluation.ClassifierReport {
    /// One line: the fine-tuned classifier's figures.
    public var summary: String {
        String(format: "fine-tuned: top-1 %.1f%%, top-5 %.1f%% over %d views per video (one view: top-1 %.1f%%)%@ (%d test videos, %d classes, %.0f s)",
               100 * top1, 100 * top5, views, 100 * singleViewTop1, preciseBNBatches > 0 ? ", precise BN over \(preciseBNBatches) batches" : "",
               testVideos, classes, seconds)
    }

    public func write(to file: URL) throws { try writeJSON(self, to: file) }
}

/// Indented, keys sorted, written whole (a reader sees the old file or the new one).
func writeJSON<T: Encodable>(_ value: T, to file: URL) throws {
    try DurableFiles.write(try JSONEncoder.sorted.encode(value), to: file)
}
