import Foundation
import XCTest

/// Memory known before it is spent: a recipe too big for the machine is refused at once, and a
/// run's measured peak is within a quarter of its estimate.
final class MemoryTests: XCTestCase {
    override class func tearDown() { TinyDataset.remove() }

    func testARecipeTooBigForTheMachineIsRefusedBeforeAnythingIsWritten() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("memory-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let recipe = ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/quickstart.yaml").path
        let oversized = ["--set", "optim.batch_size=256", "--set", "data.crop=512", "--set", "data.clip_frames=32", "--set", "model.width=4"]
        let output = dir.appendingPathComponent("run")
        // under a 600 MB address-space limit: the refusal comes from the shapes, not from trying
        let r = try runMaclr(["pretrain", recipe, "--set", "data.dataset=\(try TinyDataset.url().path)", "--set", "train.output=\(output.path)"] + oversized,
                             addressSpaceLimitKiB: 600_000)
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertNotNil(r.err.range(of: #"needs at least \d+\.\d GiB at peak, and this machine has \d+\.\d GiB available; lower optim.batch_size, data.crop, data.clip_frames, model.width"#,
                                    options: .regularExpression), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "nothing written")
        let shown = try runMaclr(["recipe", recipe] + oversized)
        XCTAssertEqual(shown.status, 0, shown.err)
        XCTAssertTrue(shown.err.contains("memory: at least "), shown.err)
    }

    func testARunsPeakIsWithinAQuarterOfItsEstimate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("memory-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runMaclr(["pretrain", ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes/quickstart.yaml").path,
                              "--set", "data.dataset=\(try TinyDataset.url().path)", "--set", "train.output=\(dir.path)",
                              "--set", "optim.steps=4", "--set", "optim.warmup_steps=1", "--set", "optim.batch_size=4", "--set", "data.crop=32",
                              "--set", "train.monitor_every=0", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        let pattern = try Regex(#"peak memory: ([0-9.]+) GiB \(estimated ([0-9.]+) GiB\)"#, as: (Substring, Substring, Substring).self)
        guard let m = r.err.firstMatch(of: pattern) else { return XCTFail(r.err) }
        let (peak, estimate) = (Double(m.1)!, Double(m.2)!)
        XCTAssertEqual(estimate, peak, accuracy: 0.25 * peak, r.err)
    }
}
