import Backbones
import DataHDF5
import Foundation
import Tensor
import Training

/// `maclr pretrain` and every run of a sweep: trains `recipe` (resuming its run folder), with
/// the kNN monitor when `train.monitor_every` asks; with `evaluate`, then evaluates the final
/// encoder and writes the figures to the run folder's eval.json. With several processes all
/// train and process 0 alone evaluates (the others return nil).
public func pretrainAndEvaluate(_ recipe: Recipe, fresh: Bool, evaluate: Bool = true, collective: Collective = Processes.single,
                                holding lock: RunLock? = nil, log: @escaping (String) -> Void) throws -> (folder: RunFolder, report: Evaluation.Report?) {
    let (folder, _) = try pretrain(recipe, fresh: fresh, collective: collective, holding: lock, monitor: try KNNMonitor(recipe), log: log)
    guard evaluate && collective.rank == 0 else { return (folder, nil) }
    let net = try Evaluation.loadEncoder(from: try Checkpoint(path: folder.url.path))
    let dataset = try ShardDataset(folder: URL(fileURLWithPath: recipe.data.dataset))
    let report = try Evaluation.run(encoder: { net.features($0) }, dataset: dataset, recipe: recipe, log: log)
    try report.write(to: folder.evaluation)
    return (folder, report)
}

/// `maclr finetune`: trains the whole visual encoder and a linear classifier on a labelled split
/// (the recipe's `loss.objective: supervised`, its encoder from `model.init_from` or a random init,
/// dropout before the classifier), with the trainer's checkpoints, resume, metrics and processes;
/// then tests the classifier on `eval.split_test`, class scores averaged over the views (after
/// precise BN when `eval.precise_bn` asks), and writes finetune.json to the run folder.
public func finetuneAndTest(_ recipe: Recipe, fresh: Bool, collective: Collective = Processes.single, holding lock: RunLock? = nil,
                            log: @escaping (String) -> Void) throws -> (folder: RunFolder, report: Evaluation.ClassifierReport?) {
    guard recipe.supervised else {
        throw TrainingError("\(recipe.source): fine-tuning trains a classifier: it needs loss.objective: supervised (see Recipes/finetune.yaml)")
    }
    let (folder, _) = try pretrain(recipe, fresh: fresh, collective: collective, holding: lock, monitor: try KNNMonitor(recipe), log: log)
    guard collective.rank == 0 else { return (folder, nil) }
    let checkpoint = try Checkpoint(path: folder.url.path)
    let dataset = try ShardDataset(folder: URL(fileURLWithPath: recipe.data.dataset))
    var config = checkpoint.recipe.visualConfig
    config.classes = max(1, dataset.manifest.classes.count)
    let network = VideoResNet(config, seed: 0)
    try network.loadNamedState(checkpoint.tensors, prefix: "visual", source: checkpoint.folder.path)
    if recipe.eval.preciseBn > 0 {
        log("precise BN: statistics over \(recipe.eval.preciseBn) training batches\n")
        try Evaluation.recomputeBatchNorm(network: network, dataset: dataset, recipe: recipe, batches: recipe.eval.preciseBn)
    }
    var report = try Evaluation.classify(network: network, dataset: dataset, recipe: recipe, log: log)
    report.preciseBNBatches = recipe.eval.preciseBn
    try report.write(to: folder.finetuning)
    return (folder, report)
}
