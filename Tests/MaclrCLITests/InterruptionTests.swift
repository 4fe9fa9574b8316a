import Foundation
import XCTest

/// Nothing lost, end to end through the CLI: SIGTERM during pretrain and prepare, a second
/// pretrain on a busy run folder, and a full disk (a file size limit) during prepare and during
/// a checkpoint.
final class InterruptionTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("interrupt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    override class func tearDown() { TinyDataset.remove() }

    /// A small quickstart run: `steps` steps, every step logged.
    func pretrainArguments(_ output: URL, steps: Int, checkpointEvery: Int = 1000) throws -> [String] {
        ["pretrain", ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/quickstart.yaml").path,
         "--set", "data.dataset=\(try TinyDataset.url().path)", "--set", "train.output=\(output.path)",
         "--set", "optim.steps=\(steps)", "--set", "optim.warmup_steps=2", "--set", "optim.batch_size=4", "--set", "data.crop=16",
         "--set", "data.clip_frames=4", "--set", "model.head_hidden=16", "--set", "train.log_every=1",
         "--set", "train.checkpoint_every=\(checkpointEvery)", "--threads", "1"]
    }

    /// Every step's loss terms from a run's metrics.jsonl.
    func losses(_ run: URL) throws -> [[String: Double]] {
        try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            let d = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return d.compactMapValues { $0 as? Double }.filter { $0.key.hasPrefix("loss") }
        }
    }

    func metricLines(_ run: URL) -> Int {
        ((try? String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    /// Starts maclr in the background, output discarded.
    func start(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = CLITests.binary
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        // drained so a chatty child never blocks
        DispatchQueue.global().async { _ = err.fileHandleForReading.readDataToEndOfFile() }
        try p.run()
        return p
    }

    func waitFor(_ what: String, timeout: TimeInterval = 120, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw TestFailure(description: "timed out after \(Int(timeout)) s waiting for \(what)") }
            usleep(5_000)
        }
    }

    func testSIGTERMWritesACheckpointAndTheRerunContinuesExactly() throws {
        let whole = dir.appendingPathComponent("whole")
        let reference = try runMaclr(try pretrainArguments(whole, steps: 16))
        XCTAssertEqual(reference.status, 0, reference.err)

        let run = dir.appendingPathComponent("stopped")
        let p = try start(try pretrainArguments(run, steps: 16))
        try waitFor("five steps") { metricLines(run) >= 5 }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 143, "128 + SIGTERM: interrupted")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).filter { $0.hasPrefix("step-") }
        XCTAssertEqual(checkpoints.count, 1, "one checkpoint, written on SIGTERM: \(checkpoints)")
        let stoppedAt = try XCTUnwrap(Int(checkpoints[0].dropFirst(5)))
        XCTAssertTrue((5..<16).contains(stoppedAt), "\(stoppedAt)")

        let rerun = try runMaclr(try pretrainArguments(run, steps: 16))
        XCTAssertEqual(rerun.status, 0, rerun.err)
        XCTAssertTrue(rerun.err.contains("resuming from"), rerun.err)
        let (a, b) = (try losses(run), try losses(whole))
        XCTAssertEqual(a.count, 16)
        for (step, (x, y)) in zip(a, b).enumerated() {
            XCTAssertEqual(Set(x.keys), Set(y.keys))
            for (k, v) in y { XCTAssertEqual(x[k]!, v, accuracy: 1e-6 * max(1, abs(v)), "step \(step + 1) \(k)") }
        }
    }

    func testASecondPretrainOnABusyRunFolderIsRefusedAndAKilledOnesLockIsTakenOver() throws {
        let run = dir.appendingPathComponent("busy")
        let first = try start(try pretrainArguments(run, steps: 100_000))
        try waitFor("the first run's first step") { metricLines(run) >= 1 }
        let second = try runMaclr(try pretrainArguments(run, steps: 100_000))
        XCTAssertNotEqual(second.status, 0)
        let lines = second.err.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, second.err)
        XCTAssertTrue(second.err.contains("another maclr process") && second.err.contains("\(first.processIdentifier)"), second.err)
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        // the dead process's lock does not hold the folder forever
        let third = try runMaclr(try pretrainArguments(run, steps: 3) + ["--fresh"])
        XCTAssertEqual(third.status, 0, third.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("run.lock").path), "released at the end")
    }

    func testSIGTERMDuringPrepareLeavesNoHalfShardAndTheRerunGivesTheSameDataset() throws {
        let videos = dir.appendingPathComponent("videos")
        let made = try runMaclr(["synth", videos.path, "--classes", "2", "--per-class", "4", "--frames", "16", "--size", "32"])
        XCTAssertEqual(made.status, 0, made.err)
        let args = { (out: URL) in ["prepare", videos.appendingPathComponent("labels.csv").path, out.path, "--size", "32x32",
                                    "--videos-per-shard", "2", "--workers", "1"] }
        let whole = dir.appendingPathComponent("whole")
        XCTAssertEqual(try runMaclr(args(whole)).status, 0)

        let stopped = dir.appendingPathComponent("stopped")
        let p = try start(args(stopped))
        try waitFor("the first shard") { FileManager.default.fileExists(atPath: stopped.appendingPathComponent("shard-00000.h5").path) }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 143)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stopped.appendingPathComponent("manifest.json").path), "no manifest for an unfinished dataset")
        let rerun = try runMaclr(args(stopped))
        XCTAssertEqual(rerun.status, 0, rerun.err)
        XCTAssertTrue(rerun.err.contains("resuming"), rerun.err)
        let manifest = { (url: URL) throws -> [String: Any] in
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("manifest.json"))) as? [String: Any])
        }
        XCTAssertEqual(try manifest(stopped)["shards"] as? NSArray, try manifest(whole)["shards"] as? NSArray, "same shards, byte for byte (checksums)")
    }

    func testAFullDiskDuringPrepareIsOneLineAndTheRerunCompletes() throws {
        let videos = dir.appendingPathComponent("videos")
        XCTAssertEqual(try runMaclr(["synth", videos.path, "--classes", "2", "--per-class", "2", "--frames", "16", "--size", "32"]).status, 0)
        let out = dir.appendingPathComponent("dataset")
        let args = ["prepare", videos.appendingPathComponent("labels.csv").path, out.path, "--size", "32x32", "--workers", "1"]
        let full = try runMaclr(args, fileSizeLimitKiB: 64)
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.err.contains("shard-00000.h5"), full.err)
        XCTAssertEqual(full.err.split(separator: "\n").filter { $0.contains("Error") }.count, 1, full.err)
        let left = try FileManager.default.contentsOfDirectory(atPath: out.path)
        XCTAssertFalse(left.contains("shard-00000.h5") || left.contains("manifest.json"), "nothing half-written under a real name: \(left)")
        let rerun = try runMaclr(args)
        XCTAssertEqual(rerun.status, 0, rerun.err)
        let inspect = try runMaclr(["inspect", out.path])
        XCTAssertEqual(inspect.status, 0, inspect.out + inspect.err)
    }

    func testAFullDiskDuringACheckpointLeavesNoPartOfItAndTheRerunEndsWithTheSameLosses() throws {
        let whole = dir.appendingPathComponent("whole")
        XCTAssertEqual(try runMaclr(try pretrainArguments(whole, steps: 6, checkpointEvery: 3)).status, 0)
        let run = dir.appendingPathComponent("full")
        // a limit below the checkpoint's size (metrics and events stay under it)
        let full = try runMaclr(try pretrainArguments(run, steps: 6, checkpointEvery: 3), fileSizeLimitKiB: 256)
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.err.contains("cannot write checkpoint step-0000003"), full.err)
        XCTAssertEqual(full.err.split(separator: "\n").filter { $0.contains("Error") }.count, 1, full.err)
        let names = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path)
        XCTAssertEqual(names, [], "no checkpoint, not even a partial one")
        let rerun = try runMaclr(try pretrainArguments(run, steps: 6, checkpointEvery: 3))
        XCTAssertEqual(rerun.status, 0, rerun.err)
        let (a, b) = (try losses(run), try losses(whole))
        XCTAssertEqual(a.count, 6)
        for (x, y) in zip(a, b) { for (k, v) in y { XCTAssertEqual(x[k]!, v, accuracy: 1e-6 * max(1, abs(v)), k) } }
    }
}

/// A test that cannot go on (a condition it waited for never came, a tool it needs is missing) fails, naming why.
struct TestFailure: Error, CustomStringConvertible { let description: String }
