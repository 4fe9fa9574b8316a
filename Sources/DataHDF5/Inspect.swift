import Foundation
import Tensor

/// `maclr inspect`: validates a dataset folder (manifest, schema version, shapes, counts, rgb/flow
/// alignment, labels, checksums) and summarises it. Every fault is reported, each naming the file.
public struct DatasetInspection {
    public var faults: [String] = []
    public var summary: [String] = []

    public init(folder: URL, verifyChecksums: Bool = true) {
        let manifest: DatasetManifest
        do { manifest = try DatasetManifest.load(from: folder) } catch { faults.append("\(error)"); return }
        let mpath = folder.appendingPathComponent("manifest.json").path
        if manifest.format != DatasetManifest.formatName { faults.append("\(mpath): format '\(manifest.format)' is not \(DatasetManifest.formatName)") }
        if manifest.version != DatasetManifest.currentVersion {
            faults.append("\(mpath): dataset version \(manifest.version), this maclr reads version \(DatasetManifest.currentVersion)")
        }
        if !manifest.complete { faults.append("\(mpath): preparation did not finish (rerun maclr prepare to resume)") }
        var names = Set<String>()
        var labelCounts = [Int: Int]()
        var size: (Int, Int)? = nil
        var fps: Double = 0
        var flow = "none"
        for entry in manifest.shards {
            let path = folder.appendingPathComponent(entry.file).path
            guard FileManager.default.fileExists(atPath: path) else { faults.append("\(path): missing"); continue }
            if let fault = entry.sizeFault(at: path) {
                faults.append(fault)
            } else if verifyChecksums, let fault = try? entry.checksumFault(at: path) {
                faults.append(fault)
            }
            let shard: ShardReader
            do { shard = try ShardReader(path: path) } catch { faults.append("\(error)"); continue }
            let rows = shard.rgbShape.first ?? 0
            let a = shard.attributes
            if shard.rgbShape != [rows, a.height, a.width, 3] {
                faults.append("\(path): /rgb has shape \(shard.rgbShape), expected [F, \(a.height), \(a.width), 3]")
            }
            if let fs = shard.flowShape, fs != [rows, a.height, a.width, 2] {
                faults.append("\(path): rgb/flow length mismatch: /rgb has \(rows) frames of \(a.height)x\(a.width), /flow has shape \(fs)")
            }
            if (a.flowAlgorithm != "none") != shard.hasFlow {
                faults.append("\(path): flow_algorithm is '\(a.flowAlgorithm)' but /flow is \(shard.hasFlow ? "present" : "absent")")
            }
            if rows != entry.frames { faults.append("\(path): \(rows) frames, the manifest says \(entry.frames)") }
            if shard.videos.count != entry.videos { faults.append("\(path): \(shard.videos.count) videos, the manifest says \(entry.videos)") }
            var expectedStart = 0
            for v in shard.videos {
                if v.start != expectedStart || v.length <= 0 {
                    faults.append("\(path): video \(v.name) starts at \(v.start) with \(v.length) frames, expected start \(expectedStart)")
                }
                expectedStart = v.start + v.length
                if v.label < -1 || v.label >= max(manifest.classes.count, 0) && v.label != -1 {
                    faults.append("\(path): video \(v.name) has label \(v.label), outside -1..<\(manifest.classes.count)")
                }
                if !names.insert(v.name).inserted { faults.append("\(path): video name \(v.name) appears twice in the dataset") }
                labelCounts[v.label, default: 0] += 1
            }
            if expectedStart != rows { faults.append("\(path): videos cover \(expectedStart) frames of \(rows)") }
            if let s = size, s != (a.width, a.height) { faults.append("\(path): frames are \(a.width)x\(a.height), other shards \(s.0)x\(s.1)") }
            size = (a.width, a.height); fps = a.fps; flow = a.flowAlgorithm
        }
        for (split, videos) in manifest.splits.sorted(by: { $0.key < $1.key }) {
            if let missing = videos.first(where: { !names.contains($0) }) {
                faults.append("\(mpath): split '\(split)' names video '\(missing)', which no shard holds")
            }
        }
        summary.append("\(folder.path): \(manifest.shards.count) shard(s), \(manifest.videoCount) videos, \(manifest.frameCount) frames"
                       + (size.map { ", \($0.0)x\($0.1)" } ?? "") + String(format: ", %.4g fps, flow: %@ (bound %.0f px)", fps, flow, manifest.preparation.flowBound))
        if !manifest.classes.isEmpty {
            let counts = manifest.classes.enumerated().map { "\($1) \(labelCounts[$0] ?? 0)" }.joined(separator: ", ")
            summary.append("classes (\(manifest.classes.count)): \(counts)" + ((labelCounts[-1] ?? 0) > 0 ? ", unlabelled \(labelCounts[-1]!)" : ""))
        }
        if !manifest.splits.isEmpty {
            summary.append("splits: " + manifest.splits.keys.sorted().map { "\($0) \(manifest.splits[$0]!.count)" }.joined(separator: ", "))
        }
        if !manifest.failed.isEmpty {
            summary.append("failed videos (\(manifest.failed.count), skipped):")
            summary += manifest.failed.map { "  \($0.source): \($0.reason)" }
        }
    }
}
