import Backbones
import Foundation
import Tensor
import XCTest

/// The command line end to end: the built `maclr` binary run as a user runs it.
final class CLITests: XCTestCase {
    /// The products directory: on Linux the test bundle's URL is that directory, on macOS the
    /// .xctest bundle sits inside it.
    static var binary: URL {
        let bundle = Bundle(for: CLITests.self).bundleURL
        let candidates = [bundle.appendingPathComponent("maclr"), bundle.deletingLastPathComponent().appendingPathComponent("maclr")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try runMaclr(args) }

    func testVersionAndHelp() throws {
        let v = try run(["--version"])
        XCTAssertEqual(v.status, 0)
        XCTAssertEqual(v.out.trimmingCharacters(in: .whitespacesAndNewlines), "0.1.0")
        let h = try run(["--help"])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(h.out.contains("bench"), h.out)
        XCTAssertTrue(h.out.contains("export"), h.out)
    }

    func testBadArgumentIsOneLineNamingTheValue() throws {
        let r = try run(["export", "--arch", "r4d_18", "--output", "/tmp/x.safetensors"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("'r4d_18'"), r.err)
        let pathway = try run(["eval", "--recipe", "Recipes/quickstart.yaml", "--pathway", "audio"])
        XCTAssertNotEqual(pathway.status, 0)
        XCTAssertTrue(pathway.err.contains("'audio'"), pathway.err)
        let exported = try run(["eval", "--encoder", "/tmp/x.safetensors", "--pathway", "motion"])
        XCTAssertNotEqual(exported.status, 0)
        XCTAssertTrue(exported.err.contains("--pathway motion needs --checkpoint or --recipe"), exported.err)
    }

    /// bench conv names the bad value before any conv runs (a zero stride divided by zero, an
    /// oversized kernel tripped a precondition).
    func testAblateNamesABadSeedList() throws {
        let r = try run(["ablate", "Recipes/ablations/benchmark.yaml", "--seeds", "0,x", "--dry-run"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--seeds '0,x'"), r.err)
    }

    func testBenchConvRejectsBadShapesByName() throws {
        for (args, named) in [(["--stride", "0,1,1"], "'0,1,1'"), (["--input", "8,8,2,2,16", "--padding", "0,0,0"], "does not fit"),
                              (["--weight", "36,1,3,3,8"], "16 channels")] {
            let r = try run(["bench", "conv"] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains(named), "\(args): \(r.err)")
        }
    }

    func testExportWritesAnEncoderOursLoadsBack() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        let r = try run(["export", "--arch", "r3d_18", "--width", "0.125", "--seed", "4", "--output", url.path])
        XCTAssertEqual(r.status, 0, r.err)
        let reloaded = VideoResNet(VideoResNetConfig(kind: .r3d18, width: 0.125), seed: 99)
        try reloaded.loadSafetensors(from: url)
        let same = VideoResNet(VideoResNetConfig(kind: .r3d18, width: 0.125), seed: 4)
        XCTAssertEqual(reloaded.parameters().map { $0.tensor.toArray() }, same.parameters().map { $0.tensor.toArray() })
    }

    /// `--set` applies with --encoder too (it was once read only beside --recipe): a misspelt key
    /// is named, a wrong type is named.
    func testOverridesApplyToAnExportedEncoder() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertEqual(try run(["export", "--arch", "r3d_18", "--width", "0.125", "--output", url.path]).status, 0)
        let typo = try run(["eval", "--encoder", url.path, "--set", "data.crp=64", "--dataset", "/nonexistent"])
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.err.contains("data.crp") && typo.err.contains("data.crop"), typo.err)
        let wrongType = try run(["extract", "--encoder", url.path, "--set", "data.crop=big", "--dataset", "/nonexistent", "--output", "/tmp/x.h5"])
        XCTAssertNotEqual(wrongType.status, 0)
        XCTAssertTrue(wrongType.err.contains("'data.crop' must be an integer"), wrongType.err)
    }

    func testBenchEnginePrintsTheTableWithFlopCounts() throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let r = try run(["bench", "engine", "--arch", "r3d_18", "--batch", "2", "--frames", "4", "--size", "32",
                         "--iterations", "1", "--warmup", "0", "--no-torch", "--json", json.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("| training step |"), r.out)
        let figures = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as! [String: Any]
        let ours = figures["ours"] as! [String: Any]
        XCTAssertGreaterThan(ours["trainStepSeconds"] as! Double, 0)
        // As the PyTorch script counts: train = 3 x forward - the first conv's input gradient
        // (2 FLOP per MAC; R3D-18's stem at 2x4x32x32x3: output 2x4x16x16x64, 3x7x7x3 taps).
        let fwd = ours["forwardGFLOPs"] as! Double
        let firstConvMACs = Double(2 * 4 * 16 * 16 * 64 * (3 * 7 * 7 * 3))
        XCTAssertGreaterThan(fwd, 0)
        XCTAssertEqual(ours["trainGFLOPs"] as! Double, 3 * fwd - 2 * firstConvMACs / 1e9, accuracy: 1e-6)

        // --kernels avx2: OpenBLAS's Haswell kernels (chosen before it loads) and none of ours at AVX-512
        let avx2 = try run(["bench", "engine", "--arch", "r3d_18", "--batch", "2", "--frames", "4", "--size", "32",
                            "--iterations", "1", "--warmup", "0", "--no-torch", "--kernels", "avx2"])
        XCTAssertEqual(avx2.status, 0, avx2.err)
        XCTAssertTrue(avx2.out.contains("GEMMs: OpenBLAS Haswell" + (Engine.cpuHasAVX512 ? "; AVX-512 kernels off (AVX2 forced))" : ")")), avx2.out)
        XCTAssertFalse(avx2.out.contains("blocked-im2col"), avx2.out)
    }
}

/// Runs the built `maclr` with `args`; returns exit status, stdout and stderr.
/// Runs maclr to its end; with `fileSizeLimitKiB`, under `ulimit -f` (a full disk, as the writer
/// sees it); with `addressSpaceLimitKiB`, under `ulimit -v` (a machine without the memory).
func runMaclr(_ args: [String], in folder: URL? = nil, fileSizeLimitKiB: Int? = nil,
              addressSpaceLimitKiB: Int? = nil) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    let limits = [fileSizeLimitKiB.map { "ulimit -f \($0)" }, addressSpaceLimitKiB.map { "ulimit -v \($0)" }].compactMap { $0 }
    if !limits.isEmpty {
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", limits.joined(separator: " && ") + " && exec \"$0\" \"$@\"", CLITests.binary.path] + args
    } else {
        p.executableURL = CLITests.binary
        p.arguments = args
    }
    if let folder { p.currentDirectoryURL = folder }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let errData = Box(), done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); done.signal() }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData.data, as: UTF8.self))
}

/// Starts maclr with `args`, SIGKILLs it as soon as `path` exists (or when 120 s have passed) and
/// returns whether it was still running then: the kill fell inside the work.
func killMaclr(_ args: [String], whenExists path: String) throws -> Bool {
    let p = Process()
    p.executableURL = CLITests.binary
    p.arguments = args
    p.standardError = FileHandle.nullDevice; p.standardOutput = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(120)
    while !FileManager.default.fileExists(atPath: path) && p.isRunning && Date() < deadline { usleep(2_000) }
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    return p.terminationReason == .uncaughtSignal
}
