import Backbones
import DataHDF5
import Foundation
import Pathways
import Tensor
import Training

/// `maclr eval`: frozen visual encoder features (several clips per video, averaged), then a
/// linear probe (multinomial logistic regression with L2, trained to convergence), retrieval
/// (test queries against the train gallery by cosine) and a weighted kNN classifier.
public struct Evaluation {
    public struct Features {
        public var values: [Float]      // (V, d)
        public var dimension: Int
        public var labels: [Int]
        public var names: [String]
        public var count: Int { labels.count }
        public init(values: [Float], dimension: Int, labels: [Int], names: [String]) {
            self.values = values; self.dimension = dimension; self.labels = labels; self.names = names
        }
    }

    public struct Report: Codable, Equatable {
        public var top1: Double, top5: Double
        public var recallAt1: Double, recallAt5: Double, recallAt10: Double
        /// R@20 and R@50, as the field reports retrieval (nil in reports written before maclr had them).
        public var recallAt20: Double?, recallAt50: Double?
        public var trainVideos: Int, testVideos: Int, classes: Int
        /// Weighted kNN top-1 (nil in reports written before maclr had it).
        public var knnTop1: Double?
        /// Views per video whose features were averaged: clips x crops (nil: written before views).
        public var views: Int?
        /// Each test video's outcome, for paired comparisons (nil in reports written before).
        public var perVideo: PerVideo?
    }

    /// Whether each test video (by name, in the split's order) was classified right by the probe
    /// (top-1) and by the kNN classifier.
    public struct PerVideo: Codable, Equatable, Sendable {
        public var names: [String]
        public var probe: [Bool], knn: [Bool]
        public init(names: [String], probe: [Bool], knn: [Bool]) { self.names = names; self.probe = probe; self.knn = knn }
    }

    /// A fine-tuned classifier tested: each test video's class scores averaged over its views.
    public struct ClassifierReport: Codable, Equatable {
        public var top1: Double, top5: Double
        /// Top-1 of the first view alone (the centre crop of the middle clip when there is one view per clip).
        public var singleViewTop1: Double
        public var views: Int, testVideos: Int, classes: Int
        /// Training batches that recomputed BN's statistics before testing (0: none).
        public var preciseBNBatches: Int
        public var seconds: Double
    }

    /// Features of every video in `split` (or `limit` of them, evenly spread), `clipsPerVideo` clips each,
    /// averaged; with `motion` the clips are the Motion pathway's input instead of RGB; `view`
    /// reorders each clip's frames first (the motion test), its shuffle seeded by the video's index.
    public static func features(encoder: (Tensor) -> Tensor, dataset: ShardDataset, split: String, sampling: ClipSampling,
                                clipsPerVideo: Int, crops: Int = 1, motion: Bool = false, limit: Int? = nil, view: TemporalView = .normal,
                                log: (String) -> Void = { _ in }) throws -> Features {
        // with a limit, videos spread evenly over the split (a split is often ordered by class)
        let all = try dataset.indices(split: split)
        let indices = limit.map { n in all.count <= n ? all : (0..<n).map { all[$0 * all.count / n] } } ?? all
        let sampler = ClipSampler(dataset: dataset, indices: indices, sampling: sampling, augmentation: .none, seed: 0, batchSize: 1, withMotion: false)
        var values: [Float] = [], labels: [Int] = [], names: [String] = []
        var dim = 0
        let start = Date()
        for (n, i) in indices.enumerated() {
            let clips = view.apply(try sampler.evaluationClips(entry: i, count: clipsPerVideo, crops: crops, motion: motion), seed: UInt64(i))
            let f = noGrad { encoder(clips) }                           // (views, d)
            dim = f.shape[1]
            let mean = noGrad { f.mean(axes: [0]) }
            values += mean.toArray()
            labels.append(dataset.entries[i].label); names.append(dataset.entries[i].name)
            let rate = Double(n + 1) / max(Date().timeIntervalSince(start), 1e-9)
            log(String(format: "\rfeatures (%@): %d/%d videos, %.1f videos/s, %.0fs left   ", split, n + 1, indices.count, rate, Double(indices.count - n - 1) / rate))
        }
        log("\n")
        return Features(values: values, dimension: dim, labels: labels, names: names)
    }

    /// Standardises with the train statistics: (x - mean) / std per dimension.
    static func standardize(_ train: Features, _ test: Features) -> (Tensor, Tensor) {
        let d = train.dimension
        var mean = [Float](repeating: 0, count: d), std = [Float](repeating: 0, count: d)
        for v in 0..<train.count { for j in 0..<d { mean[j] += train.values[v * d + j] / Float(train.count) } }
        for v in 0..<train.count { for j in 0..<d { let x = train.values[v * d + j] - mean[j]; std[j] += x * x / Float(train.count) } }
        std = std.map { max($0.squareRoot(), 1e-6) }
        func apply(_ f: Features) -> Tensor {
            Tensor(shape: [f.count, d], data: (0..<(f.count * d)).map { (f.values[$0] - mean[$0 % d]) / std[$0 % d] })
        }
        return (apply(train), apply(test))
    }

    /// Multinomial logistic regression with L2 on standardised features, full batch, Adam until
    /// the loss stops improving (relative change < 1e-7) or `iterations`. Returns (top-1, top-5).
    public static func linearProbe(train: Features, test: Features, classes: Int, l2: Float, iterations: Int) -> (Double, Double) {
        let r = probe(train: train, test: test, classes: classes, l2: l2, iterations: iterations)
        return (r.top1, r.top5)
    }

    /// The linear probe's top-1 and top-5, and whether each test video's top-1 is right.
    static func probe(train: Features, test: Features, classes: Int, l2: Float, iterations: Int) -> (top1: Double, top5: Double, hits: [Bool]) {
        let (xTrain, xTest) = standardize(train, test)
        let w = Tensor.zeros([classes, train.dimension], requiresGrad: true), b = Tensor.zeros([classes], requiresGrad: true)
        let opt = AdamW([Parameter(name: "w", tensor: w, decays: false), Parameter(name: "b", tensor: b, decays: false)],
                        learningRate: 0.05, weightDecay: 0)
        let labels = train.labels.map { max(0, $0) }
        var previous = Float.infinity
        for _ in 0..<iterations {
            opt.zeroGrad()
            let loss = softmaxCrossEntropy(linear(xTrain, weight: w, bias: b), labels: labels) + (w * w).sum() * l2
            loss.backward()
            opt.step()
            let value = loss.item()
            if abs(previous - value) < 1e-7 * max(1, abs(value)) { break }
            previous = value
        }
        let logits = noGrad { linear(xTest, weight: w, bias: b) }
        var top1 = 0, top5 = 0
        var hits: [Bool] = []
        for i in 0..<test.count {
            let hit = Self.hits((0..<classes).map { logits.data[i * classes + $0] }, label: test.labels[i])
            if hit.top1 { top1 += 1 }
            if hit.top5 { top5 += 1 }
            hits.append(hit.top1)
        }
        return (Double(top1) / Double(max(test.count, 1)), Double(top5) / Double(max(test.count, 1)), hits)
    }

    /// Whether `label` is the highest of one video's class `scores`, and among the five highest.
    static func hits(_ scores: [Float], label: Int) -> (top1: Bool, top5: Bool) {
        let ranked = scores.indices.sorted { scores[$0] > scores[$1] }
        return (ranked.first == label, ranked.prefix(5).contains(label))
    }

    /// Cosine similarity of every test video to every train video: [test][train].
    static func cosineSimilarities(train: Features, test: Features) -> [[Float]] {
        let d = train.dimension
        func unit(_ f: Features, _ i: Int) -> [Float] {
            let v = Array(f.values[(i * d)..<((i + 1) * d)])
            let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return v.map { $0 / n }
        }
        let gallery = (0..<train.count).map { unit(train, $0) }
        return (0..<test.count).map { i in
            let q = unit(test, i)
            return gallery.map { g in zip(g, q).reduce(0) { $0 + $1.0 * $1.1 } }
        }
    }

    /// R@k: the fraction of test videos whose k nearest train videos (cosine) include one of the same class.
    public static func retrieval(train: Features, test: Features, ks: [Int] = [1, 5, 10, 20, 50]) -> [Double] {
        let similarities = cosineSimilarities(train: train, test: test)
        var hits = [Int](repeating: 0, count: ks.count)
        for i in 0..<test.count {
            let sims = similarities[i]
            let ranked = sims.indices.sorted { sims[$0] > sims[$1] }
            for (j, k) in ks.enumerated() where ranked.prefix(k).contains(where: { train.labels[$0] == test.labels[i] }) { hits[j] += 1 }
        }
        return hits.map { Double($0) / Double(max(test.count, 1)) }
    }

    /// Top-1 of the weighted kNN classifier solo-learn and SlowFast report (after InstDisc): each
    /// test video's `k` most cosine-similar train videos vote for their class with weight
    /// exp(similarity / temperature); ties go to the lower class index.
    public static func knn(train: Features, test: Features, classes: Int, k: Int, temperature: Double) -> Double {
        fraction(knnHits(train: train, test: test, classes: classes, k: k, temperature: temperature))
    }

    /// The share of test videos right.
    static func fraction(_ hits: [Bool]) -> Double { Double(hits.filter { $0 }.count) / Double(max(hits.count, 1)) }

    /// Whether the weighted kNN classifier gets each test video right.
    static func knnHits(train: Features, test: Features, classes: Int, k: Int, temperature: Double) -> [Bool] {
        let similarities = cosineSimilarities(train: train, test: test)
        var hits: [Bool] = []
        for i in 0..<test.count {
            let sims = similarities[i].map(Double.init)
            var votes = [Double](repeating: 0, count: classes)
            for j in sims.indices.sorted(by: { sims[$0] > sims[$1] }).prefix(k) where (0..<classes).contains(train.labels[j]) {
                votes[train.labels[j]] += exp(sims[j] / temperature)
            }
            let best = votes.indices.max(by: { votes[$0] < votes[$1] || (votes[$0] == votes[$1] && $0 > $1) })
            hits.append(best == test.labels[i])
        }
        return hits
    }

    /// The whole evaluation of an encoder on a dataset with train / test splits.
    public static func run(encoder: (Tensor) -> Tensor, dataset: ShardDataset, recipe: Recipe, motion: Bool = false,
                           log: (String) -> Void) throws -> Report {
        let sampling = recipe.sampling
        let (clips, crops) = (recipe.eval.clipsPerVideo, recipe.eval.cropsPerClip)
        let train = try features(encoder: encoder, dataset: dataset, split: recipe.eval.splitTrain, sampling: sampling, clipsPerVideo: clips,
                                 crops: crops, motion: motion, log: log)
        let test = try features(encoder: encoder, dataset: dataset, split: recipe.eval.splitTest, sampling: sampling, clipsPerVideo: clips,
                                crops: crops, motion: motion, log: log)
        return report(train: train, test: test, dataset: dataset, recipe: recipe)
    }

    /// Probe, retrieval and kNN of `test` features against `train` ones.
    static func report(train: Features, test: Features, dataset: ShardDataset, recipe: Recipe) -> Report {
        let classes = max(dataset.manifest.classes.count, (train.labels + test.labels).max().map { $0 + 1 } ?? 1)
        let (top1, top5, probeHits) = probe(train: train, test: test, classes: classes, l2: Float(recipe.eval.probeL2),
                                            iterations: recipe.eval.probeIterations)
        let r = retrieval(train: train, test: test)
        let knnHits = knnHits(train: train, test: test, classes: classes, k: recipe.eval.knnK, temperature: recipe.eval.knnTemperature)
        let knnTop1 = fraction(knnHits)
        return Report(top1: top1, top5: top5, recallAt1: r[0], recallAt5: r[1], recallAt10: r[2], recallAt20: r[3], recallAt50: r[4],
                      trainVideos: train.count, testVideos: test.count, classes: classes, knnTop1: knnTop1, views: recipe.eval.views,
                      perVideo: PerVideo(names: test.names, probe: probeHits, knn: knnHits))
    }

    /// A classifier (a fine-tuned network with its fc) on the recipe's test split: every view of
    /// a video (clips x crops) scored, the softmax scores averaged; top-1 and top-5 of the
    /// average, and top-1 of the first view alone.
    public static func classify(network: VideoResNet, dataset: ShardDataset, recipe: Recipe, log: (String) -> Void) throws -> ClassifierReport {
        let split = recipe.eval.splitTest
        let indices = try dataset.indices(split: split)
        let sampler = ClipSampler(dataset: dataset, indices: indices, sampling: recipe.sampling, augmentation: .none, seed: 0, batchSize: 1,
                                  withMotion: false)
        let classes = max(1, dataset.manifest.classes.count)
        network.eval()
        var top1 = 0, top5 = 0, single = 0
        let start = Date()
        for (n, i) in indices.enumerated() {
            let views = try sampler.evaluationClips(entry: i, count: recipe.eval.clipsPerVideo, crops: recipe.eval.cropsPerClip)
            let scores = noGrad { network(views).softmax() }                  // (views, classes)
            let mean = noGrad { scores.mean(axes: [0]) }.toArray()
            let first = Array(scores.toArray().prefix(classes))
            let label = dataset.entries[i].label
            let hit = Self.hits(mean, label: label)
            if hit.top1 { top1 += 1 }
            if hit.top5 { top5 += 1 }
            if Self.hits(first, label: label).top1 { single += 1 }
            let rate = Double(n + 1) / max(Date().timeIntervalSince(start), 1e-9)
            log(String(format: "\rtest (%@): %d/%d videos, %.1f videos/s, %.0fs left   ", split, n + 1, indices.count, rate, Double(indices.count - n - 1) / rate))
        }
        log("\n")
        let count = Double(max(indices.count, 1))
        return ClassifierReport(top1: Double(top1) / count, top5: Double(top5) / count, singleViewTop1: Double(single) / count,
                                views: recipe.eval.views, testVideos: indices.count, classes: classes, preciseBNBatches: 0,
                                seconds: Date().timeIntervalSince(start))
    }

    /// Precise BN: the running statistics of every BN layer recomputed as the plain average over
    /// `batches` training batches (clip A of each pair, the recipe's augmentation), instead of the
    /// moving average training left.
    public static func recomputeBatchNorm(network: VideoResNet, dataset: ShardDataset, recipe: Recipe, batches: Int) throws {
        let sampler = ClipSampler(dataset: dataset, indices: try dataset.indices(split: recipe.data.splitName), sampling: recipe.sampling,
                                  augmentation: recipe.augmentation, seed: UInt64(recipe.seed) &+ 991, batchSize: recipe.optim.batchSize,
                                  withMotion: false)
        let norms = network.namedModules().compactMap { $0.1 as? BatchNorm }
        let saved = norms.map(\.momentum)
        defer { for (bn, m) in zip(norms, saved) { bn.momentum = m }; network.eval() }
        for bn in norms { bn.runningMean.assign(Tensor.zeros(bn.runningMean.shape)); bn.runningVar.assign(Tensor.ones(bn.runningVar.shape)) }
        network.train()
        for b in 0..<batches {
            for bn in norms { bn.momentum = 1 / Float(b + 1) }
            let batch = try sampler.batch(at: LoaderPosition(epoch: b / sampler.batchesPerEpoch, batch: b % sampler.batchesPerEpoch))
            _ = noGrad { network.features(batch.rgbA) }
        }
    }

    /// The encoder to evaluate: a run folder or checkpoint, an exported .safetensors, or a random init.
    public static func loadEncoder(checkpoint: String?, encoderFile: String?, recipe: Recipe) throws -> VideoResNet {
        if let encoderFile {
            return try VisualEncoder(contentsOf: URL(fileURLWithPath: encoderFile)).network
        }
        if let checkpoint {
            return try loadEncoder(from: try Checkpoint(path: checkpoint), config: recipe.visualConfig)
        }
        // a random init is the network pretraining starts from (MaCLRModel draws it the same way)
        var config = recipe.visualConfig
        config.classes = nil
        let net = VideoResNet(config, seed: UInt64(recipe.seed))
        net.initialize(recipe.model.`init`, seed: UInt64(recipe.seed))
        net.eval()
        return net
    }

    /// The visual encoder a checkpoint holds, built as its recipe (or `config`) describes.
    public static func loadEncoder(from checkpoint: Checkpoint, config: VideoResNetConfig? = nil) throws -> VideoResNet {
        var config = config ?? checkpoint.recipe.visualConfig
        config.classes = nil
        let net = VideoResNet(config, seed: UInt64(checkpoint.recipe.seed))
        try EncoderWeights.load(into: net, from: checkpoint)
        net.eval()
        return net
    }

    /// The Motion pathway's encoder (with its head) of a run or checkpoint, or with none its
    /// random init as pretraining draws it from the recipe's seed.
    public static func loadMotionPathway(checkpoint: String?, recipe: Recipe) throws -> Pathway {
        guard let pathway = MaCLRModel.initialMotionPathway(recipe.modelConfig, seed: UInt64(recipe.seed)) else {
            throw TrainingError("model.motion_pathway is none: \(checkpoint ?? "the recipe") has no Motion pathway to evaluate")
        }
        if let checkpoint {
            let saved = try Checkpoint(path: checkpoint)
            try pathway.loadNamedState(saved.tensors, prefix: "motion", source: saved.folder.path)
        }
        pathway.eval()
        return pathway
    }
}
