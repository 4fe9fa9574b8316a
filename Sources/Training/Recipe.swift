import Foundation
import Yams

/// A recipe error: names the file, the key and what is wrong (and the nearest valid key).
public struct RecipeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The recipe schema: every key, its type, default and a one-line doc. `maclr recipe`
/// prints this table.
public enum RecipeKey {
    public enum Kind: Equatable { case int, double, probability, bool, string, optionalString, doubleRange, intList, choice([String]) }

    public struct Spec {
        public let key: String, kind: Kind, defaultValue: Any, doc: String
    }

    public static let all: [Spec] = [
        Spec(key: "seed", kind: .int, defaultValue: 0, doc: "seed of weights, sampling, augmentation and key shuffles"),
        Spec(key: "data.dataset", kind: .string, defaultValue: "runs/quickstart/dataset", doc: "dataset folder made by maclr prepare"),
        Spec(key: "data.split", kind: .optionalString, defaultValue: "train", doc: "split to pretrain on (null: every video)"),
        Spec(key: "data.clip_frames", kind: .int, defaultValue: 8, doc: "frames per clip"),
        Spec(key: "data.clip_stride", kind: .int, defaultValue: 2, doc: "take every n-th frame"),
        Spec(key: "data.crop", kind: .int, defaultValue: 56, doc: "clips are cropped and resized to crop x crop"),
        Spec(key: "data.positive_gap", kind: .doubleRange, defaultValue: [0.5, 10.0], doc: "seconds between a video's two clips [min, max]"),
        Spec(key: "data.motion_input", kind: .choice(["flow", "magnitude", "motion_boundaries", "frame_difference"]), defaultValue: "flow",
             doc: "what the Motion pathway sees"),
        Spec(key: "data.augment", kind: .bool, defaultValue: true, doc: "random resized crop, flip, colour jitter, grayscale, blur"),
        Spec(key: "data.flip", kind: .bool, defaultValue: true,
             doc: "random horizontal flips (turn off when classes are left/right or clockwise/anticlockwise motion)"),
        Spec(key: "data.crop_scale", kind: .doubleRange, defaultValue: [0.3, 1.0], doc: "random resized crop: area fraction [min, max] (CVRL: 0.3-1)"),
        Spec(key: "data.color_jitter", kind: .probability, defaultValue: 0.8, doc: "probability of colour jitter (brightness, contrast, saturation 0.4, hue 0.1)"),
        Spec(key: "data.grayscale", kind: .probability, defaultValue: 0.2, doc: "probability of turning a clip grey"),
        Spec(key: "data.blur", kind: .probability, defaultValue: 0.5, doc: "probability of a Gaussian blur"),
        Spec(key: "data.blur_sigma", kind: .doubleRange, defaultValue: [0.1, 2.0], doc: "blur sigma in pixels of the output clip [min, max]"),
        Spec(key: "data.motion_temporal_sampling", kind: .bool, defaultValue: false, doc: "MCL: prefer clips with more motion"),
        Spec(key: "data.motion_spatial_cropping", kind: .bool, defaultValue: false, doc: "MCL: crops must cover the moving region"),
        Spec(key: "data.loader_workers", kind: .int, defaultValue: 2, doc: "background threads preparing batches"),
        Spec(key: "model.arch", kind: .choice(["r2plus1d_18", "r3d_18"]), defaultValue: "r2plus1d_18", doc: "visual encoder (torchvision structure)"),
        Spec(key: "model.width", kind: .double, defaultValue: 0.25, doc: "channel multiplier of the visual encoder (1 = torchvision)"),
        Spec(key: "model.blocks", kind: .intList, defaultValue: [1, 1, 1, 1], doc: "residual blocks per stage of the visual encoder"),
        Spec(key: "model.motion_pathway", kind: .choice(["frames", "video", "none"]), defaultValue: "frames",
             doc: "Motion pathway: frame-wise 2-D ResNet-18, a 3-D ResNet, or none (visual-only)"),
        Spec(key: "model.motion_width", kind: .double, defaultValue: 0.125, doc: "channel multiplier of the motion encoder (paper: 1/8)"),
        Spec(key: "model.motion_blocks", kind: .intList, defaultValue: [1, 1, 1, 1], doc: "residual blocks per stage of the motion encoder"),
        Spec(key: "model.init", kind: .choice(["torchvision", "pytorch"]), defaultValue: "torchvision",
             doc: "weight init: torchvision's (Kaiming normal, fan_out) or PyTorch's layer default (uniform +-1/sqrt(fan_in))"),
        Spec(key: "model.head_hidden", kind: .int, defaultValue: 512, doc: "hidden size of the projection heads (paper: 2048)"),
        Spec(key: "model.embedding", kind: .int, defaultValue: 128, doc: "embedding size of the projection heads"),
        Spec(key: "model.queue_size", kind: .int, defaultValue: 4096, doc: "negatives per modality (paper: 65536); 0: the batch's other keys (MoCo v3)"),
        Spec(key: "model.momentum", kind: .double, defaultValue: 0.99, doc: "EMA of the key encoders (paper: 0.999)"),
        Spec(key: "model.key_bn", kind: .choice(["shuffle", "eval"]), defaultValue: "shuffle",
             doc: "key BN: shuffled sub-batches (single-process shuffle-BN) or running statistics"),
        Spec(key: "loss.objective", kind: .choice(["maclr", "supervised"]), defaultValue: "maclr", doc: "contrastive pretraining, or labels (upper bound)"),
        Spec(key: "loss.temperature", kind: .double, defaultValue: 0.1, doc: "InfoNCE temperature"),
        Spec(key: "loss.cross_modal_weight", kind: .double, defaultValue: 1.0, doc: "w of L_v->m + L_m->v"),
        Spec(key: "loss.motion_intra_weight", kind: .double, defaultValue: 0.0, doc: "weight of the motion intra-modal term L_m"),
        Spec(key: "optim.optimizer", kind: .choice(["sgd", "adamw"]), defaultValue: "sgd", doc: "optimiser"),
        Spec(key: "optim.lr", kind: .double, defaultValue: 0.05, doc: "peak learning rate"),
        Spec(key: "optim.min_lr", kind: .double, defaultValue: 0.0, doc: "learning rate at the end of the cosine"),
        Spec(key: "optim.momentum", kind: .double, defaultValue: 0.9, doc: "SGD momentum"),
        Spec(key: "optim.nesterov", kind: .bool, defaultValue: false, doc: "Nesterov momentum"),
        Spec(key: "optim.weight_decay", kind: .double, defaultValue: 1e-4, doc: "weight decay (BN and bias parameters exempt)"),
        Spec(key: "optim.batch_size", kind: .int, defaultValue: 8, doc: "clip pairs per step (before accumulation)"),
        Spec(key: "optim.accumulate", kind: .int, defaultValue: 1, doc: "micro-batches per optimiser step"),
        Spec(key: "optim.steps", kind: .int, defaultValue: 400, doc: "optimiser steps"),
        Spec(key: "optim.warmup_steps", kind: .int, defaultValue: 40, doc: "linear warm-up steps before the cosine"),
        Spec(key: "train.output", kind: .string, defaultValue: "runs/quickstart/pretrain", doc: "run folder: checkpoints, metrics.jsonl"),
        Spec(key: "train.checkpoint_every", kind: .int, defaultValue: 100, doc: "steps between checkpoints"),
        Spec(key: "train.keep_checkpoints", kind: .int, defaultValue: 2, doc: "checkpoints kept (oldest removed)"),
        Spec(key: "train.log_every", kind: .int, defaultValue: 10, doc: "steps between metrics lines"),
        Spec(key: "eval.split_train", kind: .string, defaultValue: "train", doc: "split the probe trains on and retrieval searches"),
        Spec(key: "eval.split_test", kind: .string, defaultValue: "test", doc: "split the probe and retrieval are scored on"),
        Spec(key: "eval.clips_per_video", kind: .int, defaultValue: 4, doc: "clips averaged into a video's features"),
        Spec(key: "eval.probe_l2", kind: .double, defaultValue: 1e-3, doc: "L2 weight of the linear probe"),
        Spec(key: "eval.probe_iterations", kind: .int, defaultValue: 500, doc: "full-batch iterations of the linear probe"),
    ]

    static let byKey = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })
}

/// A recipe: the schema's defaults overlaid by a YAML file (and the files it `extends:`).
public struct Recipe: Equatable {
    /// Every key's value, flattened ("optim.lr"), as JSON-compatible values.
    public private(set) var values: [String: AnyHashable]
    public let source: String

    public init(values: [String: AnyHashable] = [:], source: String = "defaults") {
        var v = Dictionary(uniqueKeysWithValues: RecipeKey.all.map { ($0.key, Recipe.hashable($0.defaultValue)) })
        for (k, x) in values { v[k] = x }
        self.values = v
        self.source = source
    }

    static func hashable(_ x: Any) -> AnyHashable {
        if let a = x as? [Double] { return AnyHashable(a) }
        if let a = x as? [Int] { return AnyHashable(a) }
        if let h = x as? AnyHashable { return h }
        return AnyHashable("\(x)")
    }

    /// Loads a YAML recipe, resolving `extends:` (a path relative to the file) first.
    public static func load(_ path: String, overrides: [String] = []) throws -> Recipe {
        var visited: Set<String> = []
        let flat = try loadFlat(path, visited: &visited)
        var values: [String: AnyHashable] = [:]
        for (k, v) in flat { values[k] = try coerce(v, for: RecipeKey.byKey[k]!, file: path) }
        var recipe = Recipe(values: values, source: path)
        try recipe.apply(overrides: overrides)
        return recipe
    }

    /// Applies command-line `key=value` overrides (the value read as YAML), checking each key and type.
    public mutating func apply(overrides: [String]) throws {
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw RecipeError("override '\(o)': expected key=value") }
            let key = String(o[..<eq]), raw = String(o[o.index(after: eq)...])
            try Self.check(key: key, file: "command line")
            values[key] = try Self.coerce((try? Yams.load(yaml: raw)) ?? raw, for: RecipeKey.byKey[key]!, file: "command line")
        }
    }

    static func loadFlat(_ path: String, visited: inout Set<String>) throws -> [String: Any] {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        guard visited.insert(url.path).inserted else { throw RecipeError("\(path): extends itself (cycle)") }
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw RecipeError("\(path): cannot read recipe") }
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw RecipeError("\(path): not valid YAML (\(error))") }
        guard let dict = (root ?? [String: Any]()) as? [String: Any] else { throw RecipeError("\(path): a recipe is a mapping of keys") }
        var base: [String: Any] = [:]
        if let parent = dict["extends"] {
            guard let p = parent as? String else { throw RecipeError("\(path): extends must be a file path") }
            base = try loadFlat(url.deletingLastPathComponent().appendingPathComponent(p).path, visited: &visited)
        }
        for (k, v) in flatten(dict.filter { $0.key != "extends" }, prefix: "") {
            try check(key: k, file: path)
            base[k] = v
        }
        return base
    }

    static func flatten(_ d: [String: Any], prefix: String) -> [(String, Any)] {
        d.flatMap { (k, v) -> [(String, Any)] in
            let key = prefix.isEmpty ? k : prefix + "." + k
            if let sub = v as? [String: Any], RecipeKey.byKey[key] == nil { return flatten(sub, prefix: key) }
            return [(key, v)]
        }
    }

    static func check(key: String, file: String) throws {
        guard RecipeKey.byKey[key] == nil else { return }
        let nearest = RecipeKey.all.map(\.key).min { editDistance($0, key) < editDistance($1, key) }!
        throw RecipeError("\(file): unknown key '\(key)' (did you mean '\(nearest)'?)")
    }

    static func coerce(_ v: Any, for spec: RecipeKey.Spec, file: String) throws -> AnyHashable {
        func wrong(_ expected: String) -> RecipeError {
            RecipeError("\(file): key '\(spec.key)' must be \(expected), got '\(v)'")
        }
        switch spec.kind {
        case .int:
            if let i = v as? Int { return i }
            throw wrong("an integer")
        case .double, .probability:
            // YAML 1.1 reads 1e-4 (no dot) as a string
            let d = (v as? Double) ?? (v as? Int).map(Double.init) ?? (v as? String).flatMap(Double.init)
            if spec.kind == .probability {
                if let d, (0...1).contains(d) { return d }
                throw wrong("a probability in [0, 1]")
            }
            if let d { return d }
            throw wrong("a number")
        case .bool:
            if let b = v as? Bool { return b }
            throw wrong("true or false")
        case .string:
            if let s = v as? String { return s }
            throw wrong("a string")
        case .optionalString:
            if v is NSNull { return "" }
            if let s = v as? String { return s }
            throw wrong("a string or null")
        case .doubleRange:
            if let a = v as? [Any], a.count == 2, let lo = (a[0] as? Double) ?? (a[0] as? Int).map(Double.init),
               let hi = (a[1] as? Double) ?? (a[1] as? Int).map(Double.init), lo <= hi { return [lo, hi] }
            throw wrong("[min, max]")
        case .intList:
            if let a = v as? [Int], !a.isEmpty { return a }
            throw wrong("a list of integers")
        case .choice(let options):
            if let s = v as? String, options.contains(s) { return s }
            throw wrong("one of \(options.joined(separator: ", "))")
        }
    }

    // Typed access
    public func int(_ k: String) -> Int { values[k]!.base as! Int }
    public func double(_ k: String) -> Double { values[k]!.base as! Double }
    public func bool(_ k: String) -> Bool { values[k]!.base as! Bool }
    public func string(_ k: String) -> String { values[k]!.base as! String }
    public func optionalString(_ k: String) -> String? { let s = string(k); return s.isEmpty ? nil : s }
    public func doubles(_ k: String) -> [Double] { values[k]!.base as! [Double] }
    public func doubleRange(_ k: String) -> ClosedRange<Double> { let d = doubles(k); return d[0]...d[1] }
    public func ints(_ k: String) -> [Int] { values[k]!.base as! [Int] }

    public mutating func set(_ k: String, _ v: AnyHashable) { values[k] = v }

    /// The resolved recipe as JSON (stored in checkpoints).
    public func json() throws -> Data {
        try JSONSerialization.data(withJSONObject: values.mapValues { $0.base }, options: [.sortedKeys, .prettyPrinted])
    }

    public static func fromJSON(_ data: Data, source: String) throws -> Recipe {
        guard let d = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw RecipeError("\(source): recipe is not a JSON object") }
        var values: [String: AnyHashable] = [:]
        for (k, v) in d {
            try check(key: k, file: source)
            values[k] = try coerce(v, for: RecipeKey.byKey[k]!, file: source)
        }
        return Recipe(values: values, source: source)
    }
}

/// Levenshtein distance, for "did you mean".
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var prev = row[0]; row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return row[b.count]
}
