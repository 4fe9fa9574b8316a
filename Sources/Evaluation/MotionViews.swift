import DataHDF5
import Foundation
import Tensor
import Training

/// The motion test (`maclr eval --views`): the test clips as they are and with their time
/// destroyed, each probed, retrieved and kNN-classified against the train features of normal
/// clips. An encoder that uses motion falls on shuffled and frozen clips; one that reads
/// appearance does not (every view holds the same frames, or one of them).
public enum TemporalView: String, CaseIterable, Codable, Sendable {
    /// The clip as it is.
    case normal
    /// Its frames in a random order (fixed per video), never the original one.
    case shuffled
    /// Its middle frame repeated: appearance without motion.
    case frozen
    /// Played backwards: the same motion in the opposite direction.
    case reversed

    /// Where each of a T-frame clip's frames comes from under this view; `seed` fixes the shuffle.
    public func frameOrder(_ t: Int, seed: UInt64) -> [Int] {
        switch self {
        case .normal: return Array(0..<t)
        case .frozen: return [Int](repeating: t / 2, count: t)
        case .reversed: return Array((0..<t).reversed())
        case .shuffled:
            var order = Array(0..<t), rng = RandomGenerator(seed: seed)
            order.shuffle(using: &rng)
            // a shuffle that left every frame in place would be the normal view
            if t > 1 && order == Array(0..<t) { order = Array(order.dropFirst()) + [order[0]] }
            return order
        }
    }

    /// Clips (V, T, H, W, C) with their frames reordered by `frameOrder`.
    public func apply(_ clips: Tensor, seed: UInt64) -> Tensor {
        guard self != .normal else { return clips }
        let t = clips.shape[1], frame = clips.count / (clips.shape[0] * t)
        let order = frameOrder(t, seed: seed)
        let out = Tensor(uninitialized: clips.shape)
        for v in 0..<clips.shape[0] {
            for (k, source) in order.enumerated() {
                (out.data + (v * t + k) * frame).update(from: clips.data + (v * t + source) * frame, count: frame)
            }
        }
        return out
    }
}

extension Evaluation {
    /// The motion test's figures: the evaluation of each view's test features against the normal
    /// train features, keyed by view name.
    public struct ViewsReport: Codable, Equatable {
        public var views: [String: Report]

        /// `view`'s figure minus the normal view's, in points of a fraction (nil when either is absent).
        public func drop(_ view: TemporalView, _ figure: KeyPath<Report, Double>) -> Double? {
            guard let normal = views[TemporalView.normal.rawValue], let other = views[view.rawValue] else { return nil }
            return other[keyPath: figure] - normal[keyPath: figure]
        }

        /// A Markdown table: each view's probe top-1, R@1 and kNN top-1, and its change from the normal view.
        public var table: String {
            var lines = ["| view | probe top-1 % | R@1 % | kNN top-1 % | probe change | kNN change |", "|---|---|---|---|---|---|"]
            for view in TemporalView.allCases {
                guard let r = views[view.rawValue] else { continue }
                let changes = view == .normal ? ["", ""] : [drop(view, \.top1), drop(view, \.knnOrZero)].map { String(format: "%+.1f", 100 * ($0 ?? 0)) }
                lines.append(String(format: "| %@ | %.1f | %.1f | %.1f | %@ | %@ |", view.rawValue, 100 * r.top1, 100 * r.recallAt1,
                                    100 * r.knnOrZero, changes[0], changes[1]))
            }
            return lines.joined(separator: "\n")
        }

        public func write(to file: URL) throws { try writeJSON(self, to: file) }
    }

    /// The motion test: train features of normal clips once, then the test split under every view.
    public static func runViews(encoder: (Tensor) -> Tensor, dataset: ShardDataset, recipe: Recipe, motion: Bool = false,
                                views: [TemporalView] = TemporalView.allCases, log: (String) -> Void) throws -> ViewsReport {
        let sampling = recipe.sampling
        let (clips, crops) = (recipe.eval.clipsPerVideo, recipe.eval.cropsPerClip)
        let train = try features(encoder: encoder, dataset: dataset, split: recipe.eval.splitTrain, sampling: sampling, clipsPerVideo: clips,
                                 crops: crops, motion: motion, log: log)
        var reports: [String: Report] = [:]
        for view in views {
            log("view \(view.rawValue): ")
            let test = try features(encoder: encoder, dataset: dataset, split: recipe.eval.splitTest, sampling: sampling, clipsPerVideo: clips,
                                    crops: crops, motion: motion, view: view, log: log)
            reports[view.rawValue] = report(train: train, test: test, dataset: dataset, recipe: recipe)
        }
        return ViewsReport(views: reports)
    }
}

extension Evaluation.Report {
    var knnOrZero: Double { knnTop1 ?? 0 }
}
