import Foundation
import Training

/// Evaluation and fine-tuning over a dataset's numbered splits (train1 / test1, train2 / test2,
/// ..., as `maclr prepare --layout ucf101` or `hmdb51` names them): one run per split, then
/// the mean and standard deviation, as the field reports UCF101 and HMDB51.
public enum SplitAverage {
    /// `recipe` for split `k`: trained on train<k> (data.split and eval.split_train), tested on
    /// test<k>, its run folder train.output/split-<k>.
    public static func recipe(_ recipe: Recipe, split k: Int) throws -> Recipe {
        var r = recipe
        try r.set([("data.split", "train\(k)"), ("eval.split_train", "train\(k)"), ("eval.split_test", "test\(k)"),
                   ("train.output", URL(fileURLWithPath: recipe.train.output).appendingPathComponent("split-\(k)").path)])
        return r
    }

    /// `body` on the recipe of each split (none: on `recipe` as it is); the figures of the runs
    /// that report them (nil from a process that does not).
    public static func run(_ recipe: Recipe, splits: [Int], _ body: (Recipe) throws -> [String: Double]?) throws -> [[String: Double]] {
        guard !splits.isEmpty else { return try body(recipe).map { [$0] } ?? [] }
        return try splits.compactMap { try body(try Self.recipe(recipe, split: $0)) }
    }

    /// "over N splits: top1 mean ± std, ..." (the sample standard deviation, in %); nil for fewer than two runs.
    public static func summary(_ runs: [[String: Double]], metrics: [String]) -> String? {
        guard runs.count > 1 else { return nil }
        let parts = metrics.compactMap { m -> String? in
            let values = runs.compactMap { $0[m] }
            guard values.count == runs.count else { return nil }
            let (mean, std) = meanAndStandardDeviation(values)
            return String(format: "%@ %.1f ± %.1f %%", m, 100 * mean, 100 * std)
        }
        return "over \(runs.count) splits: " + parts.joined(separator: ", ")
    }

    /// The mean and the sample standard deviation (n - 1).
    public static func meanAndStandardDeviation(_ values: [Double]) -> (mean: Double, std: Double) {
        let mean = values.reduce(0, +) / Double(max(values.count, 1))
        guard values.count > 1 else { return (mean, 0) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }
}
