import Foundation
import Tensor

/// `maclr pretrain`: trains `recipe` (as one of the data-parallel processes of `collective`:
/// process 0 holds the run folder's lock and writes), resuming its run folder unless `fresh`.
/// With `held`, the caller already holds the run folder's lock; otherwise it is taken here, and
/// a folder another live process trains in is refused. Returns the run folder and the step reached.
public func pretrain(_ recipe: Recipe, fresh: Bool, collective: Collective = SingleProcess(), holding held: RunLock? = nil,
                     monitor: TrainingMonitor? = nil, log: @escaping (String) -> Void) throws -> (folder: RunFolder, step: Int) {
    let folder = RunFolder(path: recipe.train.output)
    if let source = recipe.model.initFromPath, !FileManager.default.fileExists(atPath: source) {
        throw TrainingError("model.init_from \(source): no such run folder, checkpoint folder or encoder file")
    }
    // refused before the run folder is made
    let estimate = try MemoryEstimate.checked(recipe)
    var lock: RunLock? = held
    if held == nil && collective.rank == 0 {
        guard let taken = try RunLock.acquire(folder) else {
            throw TrainingError("\(folder.url.path): another maclr process (\(RunLock.holder(folder))) is training in this run folder; wait for it to end, or use another train.output")
        }
        lock = taken
    }
    defer { if held == nil { lock?.release() } }
    let log = { (text: String) in lock?.heartbeat(); log(text) }
    let trainer = try Trainer(recipe: recipe, fresh: fresh, collective: collective, memoryEstimate: estimate)
    trainer.monitor = monitor
    try trainer.run(log: log)
    return (trainer.folder, trainer.step)
}
