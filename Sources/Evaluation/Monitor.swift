import Backbones
import DataHDF5
import Foundation
import Tensor
import Training

/// kNN top-1 of the encoder as it trains (`train.monitor_every`): `train.monitor_videos` videos
/// of eval.split_test, spread evenly, each matched against as many of eval.split_train, one
/// centre clip each, in evaluation mode (BN's running statistics; nothing the training uses).
public struct KNNMonitor: TrainingMonitor {
    let recipe: Recipe
    let dataset: ShardDataset

    /// nil when the recipe asks for no monitor.
    public init?(_ recipe: Recipe) throws {
        guard recipe.train.monitorEvery > 0 else { return nil }
        self.recipe = recipe
        dataset = try ShardDataset(folder: URL(fileURLWithPath: recipe.data.dataset))
        for split in [recipe.eval.splitTrain, recipe.eval.splitTest] where try dataset.indices(split: split).isEmpty {
            throw TrainingError("train.monitor_every \(recipe.train.monitorEvery): the monitor needs labelled videos in split '\(split)' of \(recipe.data.dataset)")
        }
    }

    public func measure(_ encoder: VideoResNet) throws -> [String: Double] {
        encoder.eval()
        defer { encoder.train() }
        let n = recipe.train.monitorVideos
        func features(_ split: String) throws -> Evaluation.Features {
            try Evaluation.features(encoder: { encoder.features($0) }, dataset: dataset, split: split, sampling: recipe.sampling,
                                    clipsPerVideo: 1, limit: n)
        }
        let (gallery, queries) = (try features(recipe.eval.splitTrain), try features(recipe.eval.splitTest))
        let classes = max(dataset.manifest.classes.count, 1)
        return ["knn_top1": Evaluation.knn(train: gallery, test: queries, classes: classes, k: min(recipe.eval.knnK, gallery.count),
                                           temperature: recipe.eval.knnTemperature)]
    }
}
