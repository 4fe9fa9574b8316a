import Foundation
import XCTest

/// Data-parallel pretraining under `mpirun -np 2` on this machine: the same per-step losses as
/// one process (with the query BN in the same two groups; synchronised BN against one process's
/// plain BN), with in-batch negatives and with a queue; a rank killed mid-run ends the job quickly, and the rerun resumes to the same losses.
final class DistributedTests: XCTestCase {
    static let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
    var dir: URL!

    override func setUpWithError() throws {
        // scripts/setup.sh installs openmpi-bin: a missing mpirun is a failure, not a skip
        guard Self.mpirun != nil else { throw TestFailure(description: "no mpirun on this machine (scripts/setup.sh installs openmpi-bin)") }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { if let dir { try? FileManager.default.removeItem(at: dir) } }
    override class func tearDown() { TinyDataset.remove() }

    func arguments(_ output: URL, steps: Int, queue: Int, checkpointEvery: Int = 1000, bn: [String] = ["model.bn_groups=2"]) throws -> [String] {
        ["pretrain", ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/quickstart.yaml").path,
         "--set", "data.dataset=\(try TinyDataset.url().path)", "--set", "train.output=\(output.path)",
         "--set", "optim.steps=\(steps)", "--set", "optim.warmup_steps=2", "--set", "optim.batch_size=8", "--set", "data.crop=16",
         "--set", "data.clip_frames=4", "--set", "model.head_hidden=16", "--set", "model.queue_size=\(queue)",
         "--set", "train.log_every=1", "--set", "train.checkpoint_every=\(checkpointEvery)", "--threads", "1"] + bn.flatMap { ["--set", $0] }
    }

    /// mpirun's arguments for `processes` ranks of maclr on this machine (as root too).
    func mpi(_ processes: Int, _ args: [String]) -> [String] {
        ["-np", "\(processes)", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none", CLITests.binary.path] + args
    }

    func run(_ executable: String, _ args: [String]) throws -> (status: Int32, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func losses(_ run: URL) throws -> [[String: Double]] {
        try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            let d = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return d.compactMapValues { $0 as? Double }.filter { $0.key.hasPrefix("loss") }
        }
    }

    func assertSameLosses(_ a: URL, _ b: URL, steps: Int, _ what: String) throws {
        let (x, y) = (try losses(a), try losses(b))
        XCTAssertEqual(x.count, steps, what)
        XCTAssertEqual(y.count, steps, what)
        var worst = 0.0
        for (step, (p, q)) in zip(x, y).enumerated() {
            XCTAssertEqual(Set(p.keys), Set(q.keys), what)
            for (k, v) in q {
                worst = max(worst, abs(p[k]! - v) / max(1, abs(v)))
                XCTAssertEqual(p[k]!, v, accuracy: 1e-4 * max(1, abs(v)), "\(what): step \(step + 1) \(k)")
            }
        }
        print("\(what): \(steps) steps, worst relative difference \(worst)")
    }

    func testTwoProcessesGiveTheLossesOfOne() throws {
        for queue in [0, 16] {
            let one = dir.appendingPathComponent("one-\(queue)"), two = dir.appendingPathComponent("two-\(queue)")
            let single = try runMaclr(try arguments(one, steps: 20, queue: queue))
            XCTAssertEqual(single.status, 0, single.err)
            let parallel = try run(Self.mpirun!, mpi(2, try arguments(two, steps: 20, queue: queue)))
            XCTAssertEqual(parallel.status, 0, parallel.err)
            XCTAssertTrue(parallel.err.contains("data-parallel: 2 processes, 4 clip pairs each"), parallel.err)
            try assertSameLosses(two, one, steps: 20, queue == 0 ? "in-batch negatives" : "queue of 16")
            // the two processes ended with the same weights: process 0 exported what it trained
            XCTAssertTrue(FileManager.default.fileExists(atPath: two.appendingPathComponent("encoder.safetensors").path))
        }
    }

    /// Synchronised BN: 2 processes against one process's plain BN over the same 8 clips. The
    /// arithmetic differs (statistics combined from two halves), and this tiny run magnifies
    /// rounding within a few steps: one process with 1 and with 2 engine threads parts the same
    /// way. So the first 3 steps are compared, to float tolerance.
    func testSynchronisedBatchNormGivesTheLossesOfOneProcess() throws {
        let one = dir.appendingPathComponent("one-sync"), two = dir.appendingPathComponent("two-sync")
        XCTAssertEqual(try runMaclr(try arguments(one, steps: 3, queue: 16, bn: ["model.bn_groups=1"])).status, 0)
        let parallel = try run(Self.mpirun!, mpi(2, try arguments(two, steps: 3, queue: 16, bn: ["model.sync_bn=true"])))
        XCTAssertEqual(parallel.status, 0, parallel.err)
        try assertSameLosses(two, one, steps: 3, "synchronised BN")
    }

    /// A preparation split over two processes, by mpirun and by --shard, writes the dataset one
    /// process writes: the same manifest (shard checksums included) and shards.
    func testPreparationSplitOverTwoProcessesGivesTheSameDataset() throws {
        let videos = dir.appendingPathComponent("videos")
        XCTAssertEqual(try runMaclr(["synth", videos.path, "--classes", "2", "--per-class", "5", "--frames", "16", "--size", "32"]).status, 0)
        let args = { (out: URL) in ["prepare", videos.appendingPathComponent("labels.csv").path, out.path, "--size", "32x32",
                                    "--videos-per-shard", "2", "--workers", "1"] }
        let one = dir.appendingPathComponent("one")
        XCTAssertEqual(try runMaclr(args(one)).status, 0)
        let mpi = dir.appendingPathComponent("mpi")
        let split = try run(Self.mpirun!, self.mpi(2, args(mpi)))
        XCTAssertEqual(split.status, 0, split.err)
        let sharded = dir.appendingPathComponent("sharded")
        let parts = try (1...2).map { i -> Process in
            let p = Process()
            p.executableURL = CLITests.binary
            p.arguments = args(sharded) + ["--shard", "\(i)/2"]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        for p in parts { p.waitUntilExit(); XCTAssertEqual(p.terminationStatus, 0) }
        let manifest = { (url: URL) throws -> NSDictionary in
            let d = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("manifest.json"))) as? NSDictionary)
            return d
        }
        for folder in [mpi, sharded] {
            XCTAssertEqual(try manifest(folder), try manifest(one), folder.lastPathComponent)
            let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".prepare-state") }
            XCTAssertEqual(left, [], "progress files removed once the manifest is written")
        }
    }

    /// Positions are global: a run checkpointed by one process continues on two.
    func testARunResumesOnAnotherNumberOfProcesses() throws {
        let whole = dir.appendingPathComponent("whole"), run = dir.appendingPathComponent("switched")
        XCTAssertEqual(try runMaclr(try arguments(whole, steps: 8, queue: 16, checkpointEvery: 4)).status, 0)
        // the first half in one process: stopped by SIGTERM would do the same; here the checkpoint at 4 of 8
        let first = Process()
        first.executableURL = CLITests.binary
        first.arguments = try arguments(run, steps: 8, queue: 16, checkpointEvery: 4)
        first.standardOutput = FileHandle.nullDevice; first.standardError = FileHandle.nullDevice
        try first.run()
        let checkpoint = run.appendingPathComponent("checkpoints/step-0000004/meta.json")
        while first.isRunning && !FileManager.default.fileExists(atPath: checkpoint.path) { usleep(2_000) }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        guard FileManager.default.fileExists(atPath: checkpoint.path) else {
            return XCTFail("the one-process run ended (status \(first.terminationStatus)) before its step-4 checkpoint")
        }
        let rest = try self.run(Self.mpirun!, mpi(2, try arguments(run, steps: 8, queue: 16, checkpointEvery: 4)))
        XCTAssertEqual(rest.status, 0, rest.err)
        XCTAssertTrue(rest.err.contains("resuming from"), rest.err)
        try assertSameLosses(run, whole, steps: 8, "one process, then two")
    }

    func testAKilledRankEndsTheJobAndTheRerunResumes() throws {
        let whole = dir.appendingPathComponent("whole"), run = dir.appendingPathComponent("killed")
        XCTAssertEqual(try self.run(Self.mpirun!, mpi(2, try arguments(whole, steps: 40, queue: 16, checkpointEvery: 4))).status, 0)

        let job = Process()
        job.executableURL = URL(fileURLWithPath: Self.mpirun!)
        job.arguments = mpi(2, try arguments(run, steps: 40, queue: 16, checkpointEvery: 4))
        job.standardOutput = FileHandle.nullDevice; job.standardError = FileHandle.nullDevice
        try job.run()
        let started = Date()
        func lines() -> Int { ((try? String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? "").split(separator: "\n").count }
        while job.isRunning && lines() < 9 && Date().timeIntervalSince(started) < 120 { usleep(10_000) }
        // the rank that is not process 0: the newest maclr child of mpirun
        let children = try String(contentsOfFile: "/proc/\(job.processIdentifier)/task/\(job.processIdentifier)/children", encoding: .utf8)
            .split(separator: " ").compactMap { Int32($0) }.sorted()
        let victim = try XCTUnwrap(children.last, "mpirun's processes")
        let killedAt = Date()
        kill(victim, SIGKILL)
        job.waitUntilExit()
        let seconds = Date().timeIntervalSince(killedAt)
        XCTAssertNotEqual(job.terminationStatus, 0, "the job fails")
        XCTAssertLessThan(seconds, 30, "the job ends within seconds of a rank's death")
        print("a SIGKILLed rank ended the job in \(String(format: "%.1f", seconds)) s, status \(job.terminationStatus)")

        let rerun = try self.run(Self.mpirun!, mpi(2, try arguments(run, steps: 40, queue: 16, checkpointEvery: 4)))
        XCTAssertEqual(rerun.status, 0, rerun.err)
        XCTAssertTrue(rerun.err.contains("resuming from"), rerun.err)
        try assertSameLosses(run, whole, steps: 40, "killed and resumed")
    }
}
