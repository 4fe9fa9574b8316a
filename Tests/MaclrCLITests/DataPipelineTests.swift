import CHDF5
import DataHDF5
import Foundation
import XCTest

/// synth -> prepare -> inspect through the binary, with the failures a user meets.
final class DataPipelineTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Synthetic videos plus one file that is not a video, listed in a CSV.
    func makeVideos(perClass: Int = 3, frames: Int = 8, size: Int = 32) throws -> URL {
        let r = try runMaclr(["synth", dir.appendingPathComponent("syn").path, "--classes", "2", "--per-class", "\(perClass)",
                             "--frames", "\(frames)", "--size", "\(size)"])
        XCTAssertEqual(r.status, 0, r.err)
        let bad = dir.appendingPathComponent("syn/videos/broken.mp4")
        try Data("not a video at all".utf8).write(to: bad)
        let csv = dir.appendingPathComponent("syn/labels.csv")
        try (try String(contentsOf: csv, encoding: .utf8) + "\(bad.path),1,train\n").write(to: csv, atomically: true, encoding: .utf8)
        return csv
    }

    func prepare(_ csv: URL, _ out: URL, extra: [String] = []) throws -> (status: Int32, out: String, err: String) {
        try runMaclr(["prepare", csv.path, out.path, "--size", "32x32", "--videos-per-shard", "2", "--workers", "1"] + extra)
    }

    func testBadVideoIsListedAndSkippedAndTheDatasetInspectsClean() throws {
        let csv = try makeVideos()
        let out = dir.appendingPathComponent("ds")
        let r = try prepare(csv, out)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("skipped: \(dir.path)/syn/videos/broken.mp4: cannot open as a video"), r.err)
        // where the time went, TV-L1 by pyramid level
        XCTAssertTrue(r.out.contains("time (summed over threads): decode and resize "), r.out)
        XCTAssertTrue(r.out.contains("[levels: 32x32 "), r.out)
        XCTAssertTrue(r.out.contains("HDF5 writes "), r.out)
        let m = try DatasetManifest.load(from: out)
        XCTAssertEqual(m.videoCount, 6)
        XCTAssertEqual(m.failed.map { URL(fileURLWithPath: $0.source).lastPathComponent }, ["broken.mp4"])
        XCTAssertEqual(m.classes, ["right", "left"])
        XCTAssertEqual(m.splits["train"]?.count, 4)   // 2 x (3 - round(0.75)) ; broken.mp4 left out
        let i = try runMaclr(["inspect", out.path])
        XCTAssertEqual(i.status, 0, i.err)
        XCTAssertTrue(i.out.contains("failed videos (1, skipped)"), i.out)
    }

    func testKilledPrepareResumesToTheSameResult() throws {
        let csv = try makeVideos(perClass: 6, frames: 24, size: 48)
        let whole = dir.appendingPathComponent("whole"), killed = dir.appendingPathComponent("killed")
        XCTAssertEqual(try prepare(csv, whole).status, 0)

        // Kill once the journal records a finished shard, while later shards are still to do.
        let killedMidway = try killMaclr(["prepare", csv.path, killed.path, "--size", "32x32", "--videos-per-shard", "2", "--workers", "1"],
                                         whenExists: killed.appendingPathComponent(".prepare-state.json").path)
        XCTAssertTrue(killedMidway, "prepare finished before it could be killed; the test needs a bigger input")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("manifest.json").path))

        let r = try prepare(csv, killed)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("resuming"), r.err)
        let a = try DatasetManifest.load(from: whole), b = try DatasetManifest.load(from: killed)
        XCTAssertEqual(a, b, "a killed and resumed run gives the same shards, checksums and manifest")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: killed.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no temporary files left behind")
    }

    /// Videos longer than a window are prepared window by window; with no memory for frames every
    /// video waits on disk instead, and the shards are byte for byte the same, with and without flow.
    func testVideosPreparedInWindowsAndSpilledToDiskGiveTheSameShards() throws {
        let csv = try makeVideos(perClass: 2, frames: 75, size: 32)
        for flow in [[], ["--no-flow"]] {
            let held = dir.appendingPathComponent("held\(flow.count)"), spilled = dir.appendingPathComponent("spilled\(flow.count)")
            let a = try prepare(csv, held, extra: flow), b = try prepare(csv, spilled, extra: flow + ["--frame-memory", "0"])
            XCTAssertEqual(a.status, 0, a.err)
            XCTAssertEqual(b.status, 0, b.err)
            let m = try DatasetManifest.load(from: held)
            XCTAssertEqual(m.frameCount, 4 * 75)
            XCTAssertEqual(m, try DatasetManifest.load(from: spilled), "the same shards, checksums and manifest \(flow)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: spilled.path).filter { $0.hasPrefix(".") }
            XCTAssertEqual(leftovers, [], "the spilled frames are removed with their shard written")
        }
        let r = try prepare(csv, dir.appendingPathComponent("x"), extra: ["--frame-memory=-1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--frame-memory -1 must be 0 to 1048576 MiB"), r.err)
    }

    /// Opens a shard read-write with the C API to damage it in a specific way.
    func tamper(_ path: String, _ body: (hid_t) -> Void) {
        let f = H5Fopen(path, maclr_H5F_ACC_RDWR(), maclr_H5P_DEFAULT())
        XCTAssertGreaterThanOrEqual(f, 0)
        body(f)
        H5Fclose(f)
    }

    func testInspectNamesEachKindOfDamage() throws {
        let csv = try makeVideos()
        let good = dir.appendingPathComponent("ds")
        XCTAssertEqual(try prepare(csv, good).status, 0)
        func damaged(_ name: String, _ damage: (String) throws -> Void) throws -> String {
            let copy = dir.appendingPathComponent(name)
            try FileManager.default.copyItem(at: good, to: copy)
            try damage(copy.appendingPathComponent("shard-00000.h5").path)
            let r = try runMaclr(["inspect", copy.path])
            XCTAssertEqual(r.status, 1, "\(name): inspect should fail")
            return r.err
        }
        let truncated = try damaged("truncated") { path in
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        }
        XCTAssertTrue(truncated.contains("shard-00000.h5: ") && truncated.contains("(truncated or rewritten)"), truncated)
        XCTAssertTrue(truncated.contains("not a readable HDF5 file"), truncated)

        let wrongVersion = try damaged("version") { path in
            tamper(path) { f in
                let a = H5Aopen(f, "version", maclr_H5P_DEFAULT())
                var v: Int64 = 99
                H5Awrite(a, maclr_H5T_NATIVE_INT64(), &v)
                H5Aclose(a)
            }
        }
        XCTAssertTrue(wrongVersion.contains("shard version 99, this maclr reads versions 1 to 2"), wrongVersion)

        let mismatch = try damaged("mismatch") { path in
            tamper(path) { f in
                let d = H5Dopen2(f, "/flow", maclr_H5P_DEFAULT())
                let space = H5Dget_space(d)
                var dims = [hsize_t](repeating: 0, count: 4)
                H5Sget_simple_extent_dims(space, &dims, nil)
                H5Sclose(space)
                dims[0] -= 1                              // one frame fewer than /rgb
                H5Dset_extent(d, &dims)
                H5Dclose(d)
            }
        }
        XCTAssertTrue(mismatch.contains("shard-00000.h5: rgb/flow length mismatch: /rgb has 8 frames of 32x32, /flow has shape [7, 32, 32, 2]"), mismatch)
    }
}
