import Backbones
import DataHDF5
import Foundation
import Tensor

/// `maclr inspect` on what training writes: an encoder or other .safetensors file (every tensor
/// read, its checksum verified when recorded), a checkpoint folder (meta, recipe and state
/// verified), or a run folder (each of its checkpoints, and its encoder).
public struct ArtifactInspection {
    public var faults: [String] = []
    public var summary: [String] = []

    /// nil when `url` is none of those (then it is a dataset folder).
    public init?(_ url: URL) {
        let fm = FileManager.default
        let run = RunFolder(url)
        if url.pathExtension == "safetensors" {
            inspectTensors(url)
        } else if RunFolder.isCheckpoint(url) {
            inspectCheckpoint(url)
        } else if fm.fileExists(atPath: run.checkpoints.path) {
            // every step-* folder, a half-written one too (it is reported, not skipped)
            let names = ((try? fm.contentsOfDirectory(atPath: run.checkpoints.path)) ?? []).filter { $0.hasPrefix("step-") }.sorted()
            summary.append("\(url.path): run folder, \(names.count) checkpoint(s)")
            for name in names { inspectCheckpoint(run.checkpoints.appendingPathComponent(name)) }
            if fm.fileExists(atPath: run.encoder.path) { inspectTensors(run.encoder) }
        } else {
            return nil
        }
    }

    mutating func inspectTensors(_ url: URL) {
        do {
            let (tensors, meta) = try SafeTensors.read(url)
            let values = tensors.values.reduce(0) { $0 + $1.count }
            let described = meta.filter { $0.key != SafeTensors.checksumKey }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            let verified = meta[SafeTensors.checksumKey] != nil ? "checksums verified" : "no checksums recorded"
            summary.append("\(url.path): \(tensors.count) tensors, \(values) values, \(verified)"
                           + (described.isEmpty ? "" : "; " + described.joined(separator: ", ")))
            if let encoder = try? EncoderFile(tensors: tensors, metadata: meta, path: url.path) {
                summary.append(encoder.summary + "; " + encoder.loadSummary)
            }
        } catch {
            faults.append("\(error)")
        }
    }

    mutating func inspectCheckpoint(_ url: URL) {
        do {
            let checkpoint = try Checkpoint(folder: url)
            let verified = checkpoint.meta.recipeChecksum != nil ? "verified" : "written before checksums, not verified"
            summary.append("\(url.path): checkpoint at step \(checkpoint.meta.step) of \(checkpoint.recipe.optim.steps), \(checkpoint.tensors.count) tensors, \(verified)")
        } catch {
            faults.append("\(error)")
        }
    }
}

/// `maclr inspect PATH`: a run, checkpoint or .safetensors file, else a dataset folder.
public enum Inspection {
    /// The summary lines and the faults found (none: the path is sound).
    public static func of(_ path: String, verifyChecksums: Bool) -> (summary: [String], faults: [String]) {
        let url = URL(fileURLWithPath: path)
        if let artifact = ArtifactInspection(url) { return (artifact.summary, artifact.faults) }
        let dataset = DatasetInspection(folder: url, verifyChecksums: verifyChecksums)
        return (dataset.summary, dataset.faults)
    }
}
