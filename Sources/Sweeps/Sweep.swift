import Foundation
import Training
import Yams

/// A sweep file (`maclr ablate`): a base recipe, the variants to compare (a grid of keys and
/// values, or a list of named variants, each a set of overrides), the seeds, the evaluations
/// whose figures the tables show, and overrides shared by every variant. Loading expands every
/// variant x seed into a full recipe and validates it, so a typo stops the sweep before any run.
///
///     recipe: ../base.yaml              # relative to the sweep file
///     output: runs/ablations/loss-terms # relative to the working folder, like train.output
///     seeds: [0, 1, 2]
///     eval: [probe, retrieval, knn]
///     set: {optim.steps: 600}           # every variant
///     transfer: {real: runs/real/dataset}   # also evaluate (and fine-tune) every encoder on these
///     finetune: ../finetune.yaml        # with eval: [..., finetune] (default: beside the base recipe)
///     baseline: visual-only             # every variant's paired difference from this one, with intervals
///     variants:                         # or  grid: {loss.temperature: [0.05, 0.1, 0.2]}
///       - name: visual-only
///         set: {model.motion_pathway: none}
public struct Sweep {
    /// The figures a sweep can tabulate, from a run's evaluation and its metrics.
    public enum Metric: String, CaseIterable, Codable, Sendable {
        case probeTop1 = "probe_top1", probeTop5 = "probe_top5"
        case retrievalR1 = "retrieval_r1", retrievalR5 = "retrieval_r5", retrievalR10 = "retrieval_r10"
        case knnTop1 = "knn_top1"
        /// Top-1 of the encoder fine-tuned with the sweep's fine-tuning recipe.
        case finetuneTop1 = "finetune_top1"
        /// The training loss at the last step.
        case finalLoss = "final_loss"
        /// The motion test (`eval: [views]`): probe and kNN top-1 on test clips with their time destroyed.
        case probeTop1Shuffled = "probe_top1_shuffled", probeTop1Frozen = "probe_top1_frozen", probeTop1Reversed = "probe_top1_reversed"
        case knnTop1Shuffled = "knn_top1_shuffled", knnTop1Frozen = "knn_top1_frozen", knnTop1Reversed = "knn_top1_reversed"

        /// Higher is better, except for a loss.
        public var higherIsBetter: Bool { self != .finalLoss }
        /// Percentages in tables; the loss as it is.
        public var isFraction: Bool { self != .finalLoss }
        public var title: String {
            switch self {
            case .probeTop1: return "probe top-1 %"
            case .probeTop5: return "probe top-5 %"
            case .retrievalR1: return "R@1 %"
            case .retrievalR5: return "R@5 %"
            case .retrievalR10: return "R@10 %"
            case .knnTop1: return "kNN top-1 %"
            case .finetuneTop1: return "fine-tuned top-1 %"
            case .finalLoss: return "final loss"
            case .probeTop1Shuffled: return "probe top-1 %, shuffled"
            case .probeTop1Frozen: return "probe top-1 %, frozen"
            case .probeTop1Reversed: return "probe top-1 %, reversed"
            case .knnTop1Shuffled: return "kNN top-1 %, shuffled"
            case .knnTop1Frozen: return "kNN top-1 %, frozen"
            case .knnTop1Reversed: return "kNN top-1 %, reversed"
            }
        }
    }

    /// What `eval:` may name, and the metrics each puts in the tables.
    public enum EvalKind: String, CaseIterable, Sendable {
        case probe, retrieval, knn, finetune
        /// The motion test: the test clips shuffled, frozen and reversed (`maclr eval --views`).
        case views
        var metrics: [Metric] {
            switch self {
            case .views: return [.probeTop1Shuffled, .probeTop1Frozen, .probeTop1Reversed, .knnTop1Shuffled, .knnTop1Frozen, .knnTop1Reversed]
            case .probe: return [.probeTop1]
            case .retrieval: return [.retrievalR1]
            case .knn: return [.knnTop1]
            case .finetune: return [.finetuneTop1]
            }
        }
    }

    /// A column of the tables: a metric on the dataset the run pretrained on, or on one of the
    /// sweep's `transfer:` datasets ("probe_top1@real").
    public struct Column: Equatable, Sendable {
        public let metric: Metric
        /// The transfer dataset's name; nil for the run's own.
        public let dataset: String?
        public init(_ metric: Metric, dataset: String? = nil) { self.metric = metric; self.dataset = dataset }
        public var rawValue: String { dataset.map { metric.rawValue + "@" + $0 } ?? metric.rawValue }
        public var title: String { dataset.map { "\(metric.title) (\($0))" } ?? metric.title }
        public var higherIsBetter: Bool { metric.higherIsBetter }
        public var isFraction: Bool { metric.isFraction }
    }

    /// A dataset every run's encoder is also evaluated (and fine-tuned) on: transfer.
    public struct TransferDataset: Sendable {
        public let name: String, folder: String
    }

    public struct Variant: Sendable {
        public var name: String
        /// The variant's own overrides, in the order written (grid keys in the grid's order).
        public var overrides: [(key: String, value: String)]
        /// The same by key.
        public var overrideValues: [String: String] { Dictionary(overrides.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }) }
    }

    /// One variant at one seed: its full recipe and its folder.
    public struct Run {
        public let variant: Variant
        public let seed: Int
        public let recipe: Recipe
        public let folder: URL
        /// "variant/seed-N": how logs and tables name the run.
        public var id: String { "\(variant.name)/seed-\(seed)" }
    }

    public let file: String
    public let name: String
    public let output: URL
    public let seeds: [Int]
    /// The tables' figures: the run's own dataset, then each transfer dataset, then the final loss.
    public let metrics: [Column]
    /// What `eval:` names, for the runner.
    public let evaluations: [EvalKind]
    public let transfer: [TransferDataset]
    /// The recipe a run's encoder is fine-tuned with (`eval:` names finetune): `finetune:` in the
    /// sweep file, by default finetune.yaml beside the base recipe.
    public let finetuneRecipe: Recipe?
    /// The variant every other one is compared with (`baseline:`): paired differences with
    /// intervals in the reports.
    public let baseline: String?
    /// The base recipe with the sweep's shared settings: its random init is the reports' floor,
    /// evaluated once per seed.
    public let floorRecipe: Recipe
    /// Where the floor's evaluation of `seed` is kept.
    public func floorFile(seed: Int) -> URL { output.appendingPathComponent("floor").appendingPathComponent("seed-\(seed).json") }
    /// Where the floor's motion test (`eval: [views]`) at `seed` is kept.
    public func floorViewsFile(seed: Int) -> URL { output.appendingPathComponent("floor").appendingPathComponent("seed-\(seed)-views.json") }
    public let variants: [Variant]
    /// The keys some variant sets: the tables' columns.
    public let variedKeys: [String]
    /// Every variant x seed, seeds outer.
    public let runs: [Run]

    static let topLevelKeys = ["name", "recipe", "output", "seeds", "eval", "set", "grid", "variants", "transfer", "finetune", "baseline"]
    static let variantKeys = ["name", "set"]

    /// Loads and expands `path`; `overrides` (`key=value`, as `--set`) apply to every variant
    /// after the sweep's own shared `set:`.
    /// `seeds` replaces the file's seeds (`maclr ablate --seeds`).
    public static func load(_ path: String, overrides: [String] = [], output outputOverride: String? = nil, seeds seedsOverride: [Int]? = nil) throws -> Sweep {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        guard let text = try BoundedYAML.read(url.path) else { throw RecipeError("\(path): cannot read sweep file") }
        let root = try BoundedYAML.load(text, source: path)
        guard let dict = root as? [String: Any] else { throw RecipeError("\(path): a sweep file is a mapping of keys") }
        try checkKeys(dict.keys, valid: topLevelKeys, file: path, what: "sweep key")

        guard let recipePath = dict["recipe"] as? String, !recipePath.isEmpty else {
            throw RecipeError("\(path): key 'recipe' must name the base recipe file (relative to the sweep file)")
        }
        let basePath = recipePath.hasPrefix("/") ? recipePath : url.deletingLastPathComponent().appendingPathComponent(recipePath).path
        let base = try Recipe.load(basePath)

        let name = (dict["name"] as? String) ?? url.deletingPathExtension().lastPathComponent
        if let o = dict["output"], (o as? String)?.isEmpty ?? true { throw RecipeError("\(path): key 'output' must be a folder, got '\(Recipe.text(o))'") }
        let outputText = outputOverride ?? (dict["output"] as? String) ?? "runs/ablations/\(name)"
        let seeds = try seedsOverride ?? intList(dict["seeds"] ?? [0], key: "seeds", file: path)
        guard !seeds.isEmpty, Set(seeds).count == seeds.count, seeds.allSatisfy({ (0...Int(UInt32.max)).contains($0) }) else {
            let given = seedsOverride.map { "--seeds '\($0.map(String.init).joined(separator: ","))'" } ?? "\(path): key 'seeds'"
            throw RecipeError("\(given) must be a list of distinct integers in 0...\(UInt32.max), got '\(Recipe.text(seedsOverride ?? dict["seeds"] ?? []))'")
        }
        let evalNames = (dict["eval"] as? [Any] ?? (dict["eval"].map { [$0] } ?? ["probe", "retrieval", "knn"])).map { "\($0)" }
        var evaluations: [EvalKind] = []
        for e in evalNames {
            guard let kind = EvalKind(rawValue: e) else {
                throw RecipeError("\(path): key 'eval' must list some of \(EvalKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(e)'")
            }
            evaluations.append(kind)
        }
        var transfer: [TransferDataset] = []
        if let t = dict["transfer"] {
            guard let map = t as? [String: Any], map.allSatisfy({ ($0.value as? String).map { !$0.isEmpty } ?? false }) else {
                throw RecipeError("\(path): key 'transfer' must map names to dataset folders, e.g. {real: runs/real/dataset}")
            }
            if let bad = map.keys.first(where: { $0.isEmpty || $0.contains("@") || $0.contains("/") }) {
                throw RecipeError("\(path): transfer dataset name '\(bad)' must be non-empty, without '@' or '/'")
            }
            transfer = map.keys.sorted().map { TransferDataset(name: $0, folder: map[$0] as! String) }
        }
        var finetuneRecipe: Recipe?
        if evaluations.contains(.finetune) {
            // finetune: relative to the sweep file, like recipe:; by default beside the base recipe
            let finetunePath: String
            switch dict["finetune"] {
            case nil: finetunePath = URL(fileURLWithPath: basePath).deletingLastPathComponent().appendingPathComponent("finetune.yaml").path
            case let given as String where !given.isEmpty:
                finetunePath = given.hasPrefix("/") ? given : url.deletingLastPathComponent().appendingPathComponent(given).path
            case let other?: throw RecipeError("\(path): key 'finetune' must name a fine-tuning recipe file, got '\(Recipe.text(other))'")
            }
            let loaded = try Recipe.load(finetunePath)
            guard loaded.supervised else {
                throw RecipeError("\(path): key 'finetune' must name a fine-tuning recipe (loss.objective: supervised), got \(finetunePath)")
            }
            finetuneRecipe = loaded
        } else if dict["finetune"] != nil {
            throw RecipeError("\(path): key 'finetune' names a fine-tuning recipe, but 'eval' does not list finetune")
        }
        let perDataset = evaluations.flatMap(\.metrics)
        // the motion test runs on the run's own dataset only
        let perTransfer = evaluations.filter { $0 != .views }.flatMap(\.metrics)
        let metrics = perDataset.map { Column($0) } + transfer.flatMap { t in perTransfer.map { Column($0, dataset: t.name) } } + [Column(.finalLoss)]

        var shared = try overrideList(dict["set"], file: path, context: "set")
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw RecipeError("--set '\(o)': expected key=value") }
            shared.append((String(o[..<eq]), String(o[o.index(after: eq)...])))
        }

        var variants: [Variant] = []
        switch (dict["grid"], dict["variants"]) {
        case (nil, nil):
            variants = [Variant(name: "base", overrides: [])]
        case (let grid?, nil):
            guard let axes = grid as? [String: Any], !axes.isEmpty else { throw RecipeError("\(path): key 'grid' must map recipe keys to lists of values") }
            // the file's order of keys is lost in a dictionary: sort, so runs are listed the same way everywhere
            var combos: [[(String, String)]] = [[]]
            for key in axes.keys.sorted() {
                guard let values = axes[key] as? [Any], !values.isEmpty else {
                    throw RecipeError("\(path): grid key '\(key)' must have a list of values")
                }
                combos = combos.flatMap { c in values.map { c + [(key, yamlText($0))] } }
            }
            variants = combos.map { Variant(name: $0.map { "\(shortKey($0.0))=\($0.1)" }.joined(separator: ","), overrides: $0.map { (key: $0.0, value: $0.1) }) }
        case (nil, let list?):
            guard let items = list as? [Any], !items.isEmpty else { throw RecipeError("\(path): key 'variants' must be a list of {name, set}") }
            for (i, item) in items.enumerated() {
                guard let v = item as? [String: Any], let vName = v["name"] as? String, !vName.isEmpty else {
                    throw RecipeError("\(path): variant \(i + 1) needs a 'name'")
                }
                try checkKeys(v.keys, valid: variantKeys, file: path, what: "key of variant '\(vName)'")
                variants.append(Variant(name: vName, overrides: try overrideList(v["set"], file: path, context: "variant '\(vName)'").map { (key: $0.0, value: $0.1) }))
            }
        default:
            throw RecipeError("\(path): give 'grid' or 'variants', not both")
        }
        let names = variants.map(\.name)
        let baseline = dict["baseline"].map { "\($0)" }
        if let baseline, !names.contains(baseline) {
            throw RecipeError("\(path): key 'baseline' must name one of the variants (\(names.joined(separator: ", "))), got '\(baseline)'")
        }
        if let dup = names.first(where: { n in names.filter { $0 == n }.count > 1 }) { throw RecipeError("\(path): two variants are named '\(dup)'") }
        if let bad = names.first(where: { $0.contains("/") || $0.hasPrefix(".") }) {
            throw RecipeError("\(path): variant name '\(bad)' must not contain '/' or start with '.' (it names a folder)")
        }

        let output = URL(fileURLWithPath: outputText)
        var floorRecipe = base
        try floorRecipe.set(shared.map { (key: $0.0, value: parsedValue($0.1)) }, file: "\(path) (set)")
        var runs: [Run] = []
        // seeds outer: a sweep stopped part-way has every variant at its first seeds
        for seed in seeds {
            for variant in variants {
                let folder = output.appendingPathComponent("runs").appendingPathComponent(variant.name).appendingPathComponent("seed-\(seed)")
                var recipe = base
                let label = "\(path) (variant '\(variant.name)')"
                let overrides = (shared + variant.overrides.map { ($0.key, $0.value) }).map { (key: $0.0, value: parsedValue($0.1)) }
                try recipe.set(overrides + [("seed", seed), ("train.output", folder.path)], file: label)
                runs.append(Run(variant: variant, seed: seed, recipe: recipe, folder: folder))
            }
        }
        var varied: [String] = []
        for v in variants { for o in v.overrides where !varied.contains(o.key) { varied.append(o.key) } }
        return Sweep(file: path, name: name, output: output, seeds: seeds, metrics: metrics, evaluations: evaluations, transfer: transfer,
                     finetuneRecipe: finetuneRecipe, baseline: baseline, floorRecipe: floorRecipe, variants: variants, variedKeys: varied, runs: runs)
    }

    /// The last part of a dotted key, for grid variant names ("loss.temperature" -> "temperature").
    static func shortKey(_ key: String) -> String { String(key.split(separator: ".").last ?? Substring(key)) }

    static func checkKeys<S: Sequence>(_ keys: S, valid: [String], file: String, what: String) throws where S.Element == String {
        for k in keys where !valid.contains(k) {
            let nearest = valid.min { editDistance($0, k) < editDistance($1, k) }!
            throw RecipeError("\(file): unknown \(what) '\(k)' (did you mean '\(nearest)'?)")
        }
    }

    static func intList(_ v: Any, key: String, file: String) throws -> [Int] {
        let items = (v as? [Any]) ?? [v]
        let ints = items.compactMap { ($0 as? Int) ?? ($0 as? Double).flatMap { Int(exactly: $0) } }
        guard ints.count == items.count else { throw RecipeError("\(file): key '\(key)' must be a list of integers, got '\(Recipe.text(v))'") }
        return ints
    }

    /// A `set:` mapping (nested sections or dotted keys) as (key, value text) pairs, keys sorted.
    static func overrideList(_ v: Any?, file: String, context: String) throws -> [(String, String)] {
        guard let v else { return [] }
        guard let d = v as? [String: Any] else { throw RecipeError("\(file): \(context): 'set' must map recipe keys to values") }
        return Recipe.flatten(d, prefix: "").sorted { $0.0 < $1.0 }.map { ($0.0, yamlText($0.1)) }
    }

    /// A value written back as YAML text (how variants and tables show it, and what is parsed again).
    static func yamlText(_ v: Any) -> String {
        switch v {
        case let s as String: return s
        case is NSNull: return "null"
        case let a as [Any]: return "[" + a.map(yamlText).joined(separator: ", ") + "]"
        default: return "\(v)"
        }
    }

    static func parsedValue(_ text: String) -> Any { (try? Yams.load(yaml: text)).flatMap { $0 } ?? text }
}

extension Recipe {
    /// Sets keys together, an error naming `file` (a sweep file and variant) when a key or value is bad.
    mutating func set(_ pairs: [(key: String, value: Any)], file: String) throws {
        do { try set(pairs) } catch let e as RecipeError {
            throw RecipeError(e.description.replacingOccurrences(of: "--set", with: file))
        }
    }
}
