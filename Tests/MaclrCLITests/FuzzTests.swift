import Foundation
import Tensor
import XCTest

/// Byte-level mutations of every kind of input maclr reads (safetensors files, recipes, dataset
/// manifests, HDF5 shards, videos, official split files), each case run through the CLI in its own process under a
/// timeout: it is read, or refused with one line; never a trap, a backtrace or a hang. Seeded,
/// so every run tries the same cases; MACLR_FUZZ_CASES sets the cases per kind
/// (scripts/fuzz.sh runs more).
final class FuzzTests: XCTestCase {
    static let casesPerKind = Int(ProcessInfo.processInfo.environment["MACLR_FUZZ_CASES"] ?? "") ?? 150
    static let timeout: TimeInterval = 60
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    override class func tearDown() { TinyDataset.remove() }

    /// One mutation of `data`, drawn from `rng`, with a name for the failure message.
    static func mutate(_ data: Data, _ rng: inout RandomGenerator) -> (Data, String) {
        var d = data
        let n = max(d.count, 1)
        func position(_ limit: Int) -> Int { Int(rng.next() % UInt64(max(limit, 1))) }
        switch rng.next() % 7 {
        case 0:
            let keep = position(d.count)
            return (d.prefix(keep), "truncated to \(keep) bytes")
        case 1:
            let i = position(min(d.count, 512)), bit = UInt8(1) << UInt8(rng.next() % 8)
            if i < d.count { d[i] ^= bit }
            return (d, "header bit flipped at \(i)")
        case 2:
            let i = position(d.count), bit = UInt8(1) << UInt8(rng.next() % 8)
            if i < d.count { d[i] ^= bit }
            return (d, "bit flipped at \(i)")
        case 3:
            let count = 1 + position(16)
            for _ in 0..<count { let i = position(d.count); if i < d.count { d[i] ^= UInt8(1 + rng.next() % 255) } }
            return (d, "\(count) bytes changed")
        case 4:
            let start = position(d.count), length = 1 + position(64)
            for i in start..<min(d.count, start + length) { d[i] = UInt8(truncatingIfNeeded: rng.next()) }
            return (d, "bytes \(start)..<\(start + length) overwritten")
        case 5:
            return (Data((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }), "random bytes")
        default:
            let at = position(d.count)
            let inserted = Data((0..<(1 + position(32))).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            d.insert(contentsOf: inserted, at: at)
            return (d, "\(inserted.count) bytes inserted at \(at)")
        }
    }

    enum Outcome: Equatable { case read, refused, crashed(String), hung }

    /// Runs maclr with a timeout; stdout and stderr read to the end. A run that exits 0 but whose
    /// output `skipped` recognises (prepare reporting the video failed) counts as refused.
    static func run(_ args: [String], skipped: (String) -> Bool = { _ in false }) throws -> (Outcome, String) {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        final class Box: @unchecked Sendable { var data = Data() }
        let errData = Box(), outData = Box(), group = DispatchGroup()
        try p.run()
        DispatchQueue.global().async(group: group) { errData.data = err.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { outData.data = out.fileHandleForReading.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(2_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            return (.hung, "")
        }
        p.waitUntilExit()
        group.wait()
        let text = String(decoding: errData.data, as: UTF8.self)
        for sign in ["Fatal error", "Stack dump", "backtrace", "Segmentation", "HDF5-DIAG", "Assertion"] where text.contains(sign) {
            return (.crashed(sign), text)
        }
        if p.terminationReason == .uncaughtSignal { return (.crashed("signal \(p.terminationStatus)"), text) }
        if p.terminationStatus == 0 { return (skipped(String(decoding: outData.data, as: UTF8.self)) ? .refused : .read, text) }
        // refused: the error is named on its own line(s) starting "Error:" or "error:", nothing else
        let errors = text.split(separator: "\n").filter { $0.hasPrefix("Error: ") || $0.hasPrefix("error: ") }
        return errors.isEmpty ? (.crashed("non-zero exit without an error line"), text) : (.refused, text)
    }

    /// Mutates `original` `casesPerKind` times (seeded by `kind`), writes each to the path
    /// `place` gives, runs `args` on it, two at a time. Returns (read, refused).
    func fuzz(_ kind: String, _ original: Data, place: @escaping (Int) throws -> URL, args: @escaping (Int, URL) -> [String],
              mustRefuse: Bool = false, skipped: @escaping (String) -> Bool = { _ in false }) throws -> (read: Int, refused: Int) {
        var rng = RandomGenerator(seed: UInt64(kind.utf8.reduce(7) { $0 &* 31 &+ UInt64($1) }))
        let cases = (0..<Self.casesPerKind).map { _ in Self.mutate(original, &rng) }
        final class Tally: @unchecked Sendable { var read = 0, refused = 0, failures: [String] = []; let lock = NSLock() }
        let tally = Tally()
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            for i in stride(from: worker, to: cases.count, by: 2) {
                let (bytes, what) = cases[i]
                let result: (Outcome, String)
                do {
                    let url = try place(i)
                    try bytes.write(to: url)
                    result = try Self.run(args(i, url), skipped: skipped)
                } catch {
                    result = (.crashed("set-up: \(error)"), "")
                }
                tally.lock.lock()
                switch result.0 {
                case .read:
                    if mustRefuse && bytes != original { tally.failures.append("\(kind) case \(i) (\(what)): read, but it differs from the original") }
                    tally.read += 1
                case .refused: tally.refused += 1
                case .crashed(let sign): tally.failures.append("\(kind) case \(i) (\(what)): \(sign): \(result.1.suffix(300))")
                case .hung: tally.failures.append("\(kind) case \(i) (\(what)): no answer within \(Self.timeout) s")
                }
                tally.lock.unlock()
            }
        }
        for f in tally.failures.prefix(10) { XCTFail(f) }
        print("fuzz \(kind): \(cases.count) cases, \(tally.read) read, \(tally.refused) refused, \(tally.failures.count) crashes or hangs")
        return (tally.read, tally.refused)
    }

    func testSafetensorsFiles() throws {
        let file = dir.appendingPathComponent("encoder.safetensors")
        let made = try runMaclr(["export", "--arch", "r3d_18", "--width", "0.0625", "--output", file.path])
        XCTAssertEqual(made.status, 0, made.err)
        let counts = try fuzz("safetensors", try Data(contentsOf: file), place: { self.dir.appendingPathComponent("case-\($0).safetensors") },
                              args: { ["inspect", $1.path] }, mustRefuse: true)
        XCTAssertGreaterThan(counts.refused, 0)
    }

    func testRecipes() throws {
        let base = try Data(contentsOf: ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/base.yaml"))
        let counts = try fuzz("recipe", base, place: { self.dir.appendingPathComponent("case-\($0).yaml") }, args: { ["recipe", $1.path] })
        XCTAssertGreaterThan(counts.refused, 0)
    }

    /// Structure-level cases: well-formed YAML too big to build (an alias bomb, deep nesting in
    /// flow and block style, a huge value, a file past the size bound), as a recipe, as a sweep
    /// file and as a --set value. Each is refused with one line naming the file (or --set) and
    /// the bound, under a 600 MB address-space limit (the bomb alone would take gigabytes).
    func testWellFormedButTooBigYAML() throws {
        var bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in 1..<10 { bomb.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
        let block = (0..<200).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1"
        let cases: [(String, String, String)] = [
            ("bomb", bomb.joined(separator: "\n") + "\n", "once its aliases are expanded"),
            ("flow", "seed: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "\n", "levels deep"),
            ("block", block + "\n", "levels deep"),
            ("scalar", "train:\n  output: \"" + String(repeating: "a", count: 100_000) + "\"\n", "characters, more than"),
            ("size", "# " + String(repeating: "x", count: 2 << 20) + "\n", "bytes, more than"),
        ]
        let recipe = ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/base.yaml").path
        for (name, text, bound) in cases {
            let file = dir.appendingPathComponent("\(name).yaml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let sweep = dir.appendingPathComponent("\(name)-sweep.yaml")
            try ("recipe: \(recipe)\n" + text).write(to: sweep, atomically: true, encoding: .utf8)
            for args in [["recipe", file.path], ["ablate", sweep.path, "--dry-run"]] {
                let r = try runMaclr(args, addressSpaceLimitKiB: 600_000)
                XCTAssertEqual(r.status, 1, "\(name) \(args[0]): \(r.err.suffix(300))")
                let lines = r.err.split(separator: "\n")
                XCTAssertEqual(lines.count, 1, "\(name) \(args[0]): one line: \(r.err.suffix(300))")
                XCTAssertTrue(r.err.contains(args[0] == "recipe" ? file.path : sweep.path) && r.err.contains(bound), "\(name) \(args[0]): \(r.err.suffix(300))")
            }
        }
        let set = try runMaclr(["recipe", recipe, "--set", "data.crop_scale=" + String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)])
        XCTAssertEqual(set.status, 1, set.err)
        XCTAssertTrue(set.err.contains("--set 'data.crop_scale=...': nested 1000 levels deep, more than the 64 allowed"), set.err)
    }

    /// The data's text inputs well formed but too big: a split JSON nested 100,000 deep, a manifest
    /// nested past the bound, a video list and an annotation CSV past the size bound (sparse files,
    /// never read). Each refused in one line naming the file, within a 600 MB address space.
    func testWellFormedButTooBigDataInputs() throws {
        let video = try OfficialLayoutTests.sampleVideo(in: dir)
        let ssv2 = try OfficialLayoutTests.ssv2(in: dir, video: video), kinetics = try OfficialLayoutTests.kinetics(in: dir, video: video)
        let deepJSON = ssv2.appendingPathComponent("labels/something-something-v2-train.json")
        try Data((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8).write(to: deepJSON)
        func sparse(_ url: URL) throws {
            try? FileManager.default.removeItem(at: url)
            FileManager.default.createFile(atPath: url.path, contents: nil)
            let handle = try FileHandle(forWritingTo: url)
            try handle.truncate(atOffset: 300 << 20)
            try handle.close()
        }
        let bigCSV = kinetics.appendingPathComponent("annotations/train.csv")
        try sparse(bigCSV)
        let list = dir.appendingPathComponent("list.csv")
        try sparse(list)
        let dataset = try datasetCopy(0, replacing: "manifest.json")
        try Data(("{\"a\":" + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "}").utf8).write(to: dataset)
        let cases: [([String], String, String)] = [
            (["prepare", ssv2.appendingPathComponent("videos").path, dir.appendingPathComponent("never").path, "--layout", "ssv2", "--check",
              "--split-files", deepJSON.deletingLastPathComponent().path], deepJSON.path, "JSON nested more than 64 levels deep"),
            (["prepare", kinetics.appendingPathComponent("videos").path, dir.appendingPathComponent("never").path, "--layout", "kinetics", "--check",
              "--split-files", bigCSV.deletingLastPathComponent().path], bigCSV.path, "more than the 268435456 a annotation CSV may have"),
            (["prepare", list.path, dir.appendingPathComponent("never").path], list.path, "more than the 268435456 a list of videos may have"),
            (["inspect", dataset.deletingLastPathComponent().path], dataset.path, "JSON nested more than 64 levels deep"),
        ]
        for (args, file, bound) in cases {
            let r = try runMaclr(args, addressSpaceLimitKiB: 600_000)
            XCTAssertEqual(r.status, 1, "\(args[0]) \(file): \(r.err.suffix(300))")
            let errors = r.err.split(separator: "\n").filter { $0.lowercased().hasPrefix("error") }
            XCTAssertEqual(errors.count, 1, "\(args[0]): one line: \(r.err.suffix(300))")
            XCTAssertTrue(r.err.contains(file) && r.err.contains(bound), "\(args[0]): \(r.err.suffix(300))")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("never").path))
    }

    /// A copy of the tiny dataset whose files are links, but for `mutable`, which the case rewrites.
    func datasetCopy(_ i: Int, replacing mutable: String) throws -> URL {
        let source = try TinyDataset.url(), folder = dir.appendingPathComponent("dataset-\(i)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where name != mutable {
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(name), withDestinationURL: source.appendingPathComponent(name))
        }
        return folder.appendingPathComponent(mutable)
    }

    func testManifests() throws {
        let original = try Data(contentsOf: try TinyDataset.url().appendingPathComponent("manifest.json"))
        let counts = try fuzz("manifest", original, place: { try self.datasetCopy($0, replacing: "manifest.json") },
                              args: { ["inspect", $1.deletingLastPathComponent().path] })
        XCTAssertGreaterThan(counts.refused, 0)
    }

    /// With checksums every changed shard is refused; without, HDF5 itself parses the damage.
    func testShards() throws {
        let original = try Data(contentsOf: try TinyDataset.url().appendingPathComponent("shard-00000.h5"))
        _ = try fuzz("shard", original, place: { try self.datasetCopy($0, replacing: "shard-00000.h5") },
                     args: { ["inspect", $1.deletingLastPathComponent().path] }, mustRefuse: true)
        _ = try fuzz("shard-unchecked", original, place: { try self.datasetCopy(Self.casesPerKind + $0, replacing: "shard-00000.h5") },
                     args: { ["inspect", "--no-checksums", $1.deletingLastPathComponent().path] })
    }

    func testVideos() throws {
        let videos = dir.appendingPathComponent("synth")
        let made = try runMaclr(["synth", videos.path, "--classes", "2", "--per-class", "1", "--frames", "12", "--size", "32"])
        XCTAssertEqual(made.status, 0, made.err)
        let csv = try String(contentsOf: videos.appendingPathComponent("labels.csv"), encoding: .utf8).split(separator: "\n")
        let source = URL(fileURLWithPath: String(try XCTUnwrap(csv.dropFirst().first?.split(separator: ",").first)))
        let counts = try fuzz("video", try Data(contentsOf: source), place: { self.dir.appendingPathComponent("case-\($0).\(source.pathExtension)") },
                              args: { i, url in
                                  let list = self.dir.appendingPathComponent("case-\(i).csv")
                                  try? Data("\(url.path),x\n".utf8).write(to: list)
                                  return ["prepare", list.path, self.dir.appendingPathComponent("out-\(i)").path, "--size", "32x32", "--no-flow", "--workers", "1"]
                              }, skipped: { $0.contains(" 1 failed") })
        XCTAssertGreaterThan(counts.read, 0)
        XCTAssertGreaterThan(counts.refused, 0)
    }

    /// Split files of every official layout: each case a copy of the split-file folder (links,
    /// but for the mutated file), read by `prepare --check`.
    func testSplitFiles() throws {
        let video = try OfficialLayoutTests.sampleVideo(in: dir)
        let ucf = try OfficialLayoutTests.ucf101(in: dir, video: video), hmdb = try OfficialLayoutTests.hmdb51(in: dir, video: video)
        let kinetics = try OfficialLayoutTests.kinetics(in: dir, video: video), ssv2 = try OfficialLayoutTests.ssv2(in: dir, video: video)
        let kinds: [(name: String, folder: URL, file: String, args: [String])] = [
            ("ucf101-list", ucf.appendingPathComponent("ucfTrainTestlist"), "trainlist01.txt", [ucf.path, "--layout", "ucf101"]),
            ("hmdb51-split", hmdb.appendingPathComponent("testTrainMulti_7030_splits"), "brush_hair_test_split1.txt", [hmdb.path, "--layout", "hmdb51"]),
            ("kinetics-csv", kinetics.appendingPathComponent("annotations"), "train.csv",
             [kinetics.appendingPathComponent("videos").path, "--layout", "kinetics"]),
            ("ssv2-json", ssv2.appendingPathComponent("labels"), "something-something-v2-train.json",
             [ssv2.appendingPathComponent("videos").path, "--layout", "ssv2"]),
        ]
        for kind in kinds {
            let original = try Data(contentsOf: kind.folder.appendingPathComponent(kind.file))
            let counts = try fuzz(kind.name, original, place: { i in
                let folder = self.dir.appendingPathComponent("\(kind.name)-\(i)")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for name in try FileManager.default.contentsOfDirectory(atPath: kind.folder.path) where name != kind.file {
                    try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(name), withDestinationURL: kind.folder.appendingPathComponent(name))
                }
                return folder.appendingPathComponent(kind.file)
            }, args: { _, url in
                ["prepare", kind.args[0], self.dir.appendingPathComponent("never").path, "--check", "--split-files", url.deletingLastPathComponent().path]
                    + kind.args.dropFirst()
            })
            XCTAssertGreaterThan(counts.refused, 0, kind.name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("never").path))
        }
    }
}
