@testable import DataHDF5
import Video
import Foundation
import XCTest

final class ShardTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("shard-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    static let attributes = ShardAttributes(height: 6, width: 8, fps: 12.5, flowAlgorithm: "tvl1", flowBound: 20)

    /// A video whose pixel values encode (video, frame, position), so any misplaced read shows.
    static func video(_ id: Int, frames: Int) -> PreparedVideo {
        let n = 6 * 8
        let rgb = (0..<(frames * n * 3)).map { UInt8((id * 101 + $0 / (n * 3) * 7 + $0 % 251) % 256) }
        let flow = (0..<(frames * n * 2)).map { UInt8((id * 31 + $0 / (n * 2) * 3 + $0 % 239) % 256) }
        return PreparedVideo(name: "v\(id)", source: "/videos/clip \(id).mp4", label: id % 3, frames: frames, height: 6, width: 8, rgb: rgb, flow: flow)
    }

    /// Frames at a stride read every way (one contiguous span subsampled in memory, the loader's
    /// way; whole chunks read directly; HDF5's strided selection) equal the written frames, byte
    /// for byte: strides 1 to 4, clips across chunk boundaries,
    /// clips touching a video's first and last frames, a video shorter than most clips, and a
    /// clip that ends on the shard's last frame.
    func testContiguousAndStridedReadsGiveTheSameBytes() throws {
        let path = dir.appendingPathComponent("shard-00000.h5").path
        let w = try ShardWriter(path: path, attributes: Self.attributes)
        let videos = [Self.video(1, frames: 40), Self.video(2, frames: 5), Self.video(3, frames: 17)]
        for v in videos { try w.append(v) }
        try w.finish()
        let r = try ShardReader(path: path)
        let rgbFrame = 6 * 8 * 3, flowFrame = 6 * 8 * 2
        var compared = 0
        for (index, v) in videos.enumerated() {
            for step in 1...4 {
                for count in 1...8 where (count - 1) * step < v.frames {
                    let last = v.frames - 1 - (count - 1) * step
                    for first in Set([0, last, last / 2]) {
                        var reads: [(ShardReader.ReadPattern, [[UInt8]])] = []
                        for pattern in ShardReader.ReadPattern.allCases {
                            r.readPattern = pattern
                            reads.append((pattern, [try r.readRGB(video: index, first: first, count: count, step: step),
                                                    try r.readFlow(video: index, first: first, count: count, step: step)]))
                        }
                        var expectedRGB: [UInt8] = [], expectedFlow: [UInt8] = []
                        for k in 0..<count {
                            let f = first + k * step
                            expectedRGB += v.rgb[(f * rgbFrame)..<((f + 1) * rgbFrame)]
                            expectedFlow += v.flow![(f * flowFrame)..<((f + 1) * flowFrame)]
                        }
                        let expected = [expectedRGB, expectedFlow]
                        for (pattern, read) in reads {
                            XCTAssertEqual(read, expected, "\(pattern): video \(index) first \(first) count \(count) step \(step)")
                        }
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 100)
    }

    /// The motion scores a version 2 shard stores per frame give each clip window the score
    /// computed from its flow (the mean over frames of the mean motion-boundary map); a version 1
    /// shard (no /motion) still loads and scores windows from its flow, equally.
    func testStoredMotionScoresEqualTheOnesComputedFromTheFlow() throws {
        var scores: [[Float]] = []
        for version in [2, 1] {
            let path = dir.appendingPathComponent("v\(version).h5").path
            let w = try ShardWriter(path: path, attributes: Self.attributes)
            w.formatVersion = version
            let videos = [Self.video(1, frames: 30), Self.video(2, frames: 12)]
            for v in videos { try w.append(v) }
            try w.finish()
            let r = try ShardReader(path: path)
            XCTAssertEqual(r.version, version)
            XCTAssertEqual(r.frameMotion == nil, version == 1)
            var these: [Float] = []
            for (index, v) in videos.enumerated() {
                for (count, step) in [(4, 2), (8, 1), (3, 4)] {
                    for first in stride(from: 0, through: v.frames - 1 - (count - 1) * step, by: 3) {
                        let flow = try r.readFlow(video: index, first: first, count: count, step: step)
                        let map = ClipSampler.meanBoundaries(quantized: flow, frames: count, height: 6, width: 8, bound: 20)
                        let fromFlow = map.reduce(0, +) / Float(map.count)
                        let stored = try r.motionScore(video: index, first: first, count: count, step: step)
                        XCTAssertEqual(stored, fromFlow, accuracy: 1e-5 * max(1, fromFlow), "v\(version) video \(index) \(first)+\(count)x\(step)")
                        these.append(stored)
                    }
                }
            }
            XCTAssertTrue(these.contains { $0 > 0.1 }, "the test flow moves")
            scores.append(these)
        }
        XCTAssertEqual(scores[0].count, scores[1].count)
        for (a, b) in zip(scores[0], scores[1]) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, a)) }
    }

    /// A shard of a version this maclr does not know is refused, naming the versions it reads.
    func testAnUnknownShardVersionIsRefusedByName() throws {
        let path = dir.appendingPathComponent("v9.h5").path
        let w = try ShardWriter(path: path, attributes: Self.attributes)
        w.formatVersion = 9
        try w.append(Self.video(1, frames: 3))
        try w.finish()
        XCTAssertThrowsError(try ShardReader(path: path)) {
            XCTAssertEqual("\($0)", "\(path): shard version 9, this maclr reads versions 1 to 2")
        }
    }

    func testWriteThenReadByHyperslab() throws {
        let path = dir.appendingPathComponent("shard-00000.h5").path
        let w = try ShardWriter(path: path, attributes: Self.attributes)
        let a = Self.video(1, frames: 20), b = Self.video(2, frames: 7)
        try w.append(a); try w.append(b)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the final name appears only when the shard is complete")
        try w.finish()
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))

        let r = try ShardReader(path: path)
        XCTAssertEqual(r.attributes, Self.attributes)
        XCTAssertEqual(r.videos, [ShardVideo(name: "v1", source: "/videos/clip 1.mp4", start: 0, length: 20, label: 1),
                                  ShardVideo(name: "v2", source: "/videos/clip 2.mp4", start: 20, length: 7, label: 2)])
        XCTAssertEqual(r.rgbShape, [27, 6, 8, 3]); XCTAssertEqual(r.flowShape, [27, 6, 8, 2])
        let frame = 6 * 8 * 3
        // frames 3, 5, 7, 9 of video 1
        let clip = try r.readRGB(video: 0, first: 3, count: 4, step: 2)
        for (k, f) in [3, 5, 7, 9].enumerated() {
            XCTAssertEqual(Array(clip[(k * frame)..<((k + 1) * frame)]), Array(a.rgb[(f * frame)..<((f + 1) * frame)]))
        }
        XCTAssertEqual(try r.readFlow(video: 1, first: 0, count: 7), b.flow!)
        XCTAssertThrowsError(try r.readRGB(video: 1, first: 5, count: 3)) { XCTAssertTrue("\($0)".contains("outside video v2"), "\($0)") }
    }

    func testManifestRoundTripAndChecksum() throws {
        var m = DatasetManifest(preparation: .init(size: "short:64", fps: 10, flowAlgorithm: "tvl1", flowBound: 20, videosPerShard: 8))
        let file = dir.appendingPathComponent("x.bin")
        try Data("hello".utf8).write(to: file)
        m.shards = [.init(file: "x.bin", videos: 2, frames: 30, bytes: 5, checksum: try fileChecksum(file.path))]
        m.classes = ["left", "right"]; m.splits = ["train": ["v1"], "test": ["v2"]]
        try m.save(to: dir)
        XCTAssertEqual(try DatasetManifest.load(from: dir), m)
        XCTAssertEqual(m.shards[0].checksum, "a430d84680aabd0b")   // FNV-1a 64 of "hello"
    }

    // MARK: manifest.json carries the checksum of its content, verified on load; text inputs are bounded.

    func testTheManifestsChecksumCatchesAnEditAndOldManifestsStillLoad() throws {
        var m = DatasetManifest(preparation: .init(size: "64x64", fps: nil, flowAlgorithm: "tvl1", flowBound: 4, videosPerShard: 64))
        m.shards = [.init(file: "shard-00000.h5", videos: 2, frames: 64, bytes: 1000, checksum: "00000000000000aa")]
        m.classes = ["left", "right"]
        m.splits = ["train": ["a", "b"]]
        m.complete = true
        try m.save(to: dir)
        let url = dir.appendingPathComponent("manifest.json")
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertTrue(text.contains("\"checksum\" : \"\(try m.contentChecksum())\""), text)
        XCTAssertEqual(try DatasetManifest.load(from: dir), m)
        // one figure changed by hand
        try text.replacingOccurrences(of: "\"frames\" : 64", with: "\"frames\" : 65").write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DatasetManifest.load(from: dir)) {
            XCTAssertEqual("\($0)", "\(url.path): its checksum does not match its content (damaged, or edited by hand): prepare the dataset again, or delete the \"checksum\" line to accept an edit")
        }
        // a manifest written before checksums (no such key) loads as it is
        try DatasetManifest.encoder.encode(m).write(to: url)
        XCTAssertEqual(try DatasetManifest.load(from: dir), m)
    }

    func testTooBigOrTooDeepInputsAreRefusedInOneLine() throws {
        let deep = dir.appendingPathComponent("deep.json")
        try Data((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8).write(to: deep)
        XCTAssertThrowsError(try BoundedInput.json(deep, what: "split JSON")) {
            XCTAssertEqual("\($0)", "\(deep.path): JSON nested more than 64 levels deep")
        }
        // brackets inside strings are text, not nesting
        let quoted = dir.appendingPathComponent("quoted.json")
        try Data(("[\"" + String(repeating: "[", count: 1000) + "\\\"\"]").utf8).write(to: quoted)
        XCTAssertEqual((try BoundedInput.json(quoted, what: "split JSON") as? [String])?.first?.count, 1001)
        // a sparse file past the bound: refused from its size, never read
        let big = dir.appendingPathComponent("big.csv")
        FileManager.default.createFile(atPath: big.path, contents: nil)
        let handle = try FileHandle(forWritingTo: big)
        try handle.truncate(atOffset: UInt64(BoundedInput.fileBytes + 1))
        try handle.close()
        XCTAssertThrowsError(try Preparation.discover(big)) {
            XCTAssertEqual("\($0)", "\(big.path): \(BoundedInput.fileBytes + 1) bytes, more than the \(BoundedInput.fileBytes) a list of videos may have")
        }
        try Data(String(repeating: "{\"a\":", count: 70).utf8).write(to: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try DatasetManifest.load(from: dir)) {
            XCTAssertTrue("\($0)".hasSuffix("manifest.json: JSON nested more than 64 levels deep"), "\($0)")
        }
    }
}

/// A video's frames in windows: in memory within the budget, on disk beyond it, the same bytes back.
final class FrameStoreTests: XCTestCase {
    func testAStoreSpillsPastItsBudgetAndGivesTheFramesBackInOrder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (rgbBytes, flowBytes) = (4 * 3, 4 * 2)   // 2 x 2 frames
        let budget = FrameMemoryBudget(limit: 3 * (rgbBytes + flowBytes))
        var rgb: [UInt8] = [], flow: [UInt8] = []
        do {
            let store = FrameStore(rgbFrameBytes: rgbBytes, flowFrameBytes: flowBytes, budget: budget, spillFolder: folder)
            for window in 0..<4 {
                let r = (0..<(2 * rgbBytes)).map { UInt8((window * 31 + $0) % 256) }, f = (0..<(2 * flowBytes)).map { UInt8((window * 17 + $0) % 256) }
                try r.withUnsafeBufferPointer { rb in try f.withUnsafeBufferPointer { try store.append(rgb: rb, flow: $0, frames: 2) } }
                rgb += r; flow += f
                XCTAssertEqual(store.spilled, window >= 1, "the second window passes the budget of 3 frames")
            }
            XCTAssertEqual(budget.peak, 2 * (rgbBytes + flowBytes))
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).count, 2)
            var back: ([UInt8], [UInt8]) = ([], [])
            var sizes: [Int] = []
            try store.forEachWindow(of: 3) { r, f, n in back.0 += r; back.1 += f!; sizes.append(n) }
            XCTAssertEqual(sizes, [3, 3, 2])
            XCTAssertEqual(back.0, rgb)
            XCTAssertEqual(back.1, flow)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "the files go with the store")
        XCTAssertTrue(budget.reserve(budget.limit), "the store gave its memory back")
    }
}
