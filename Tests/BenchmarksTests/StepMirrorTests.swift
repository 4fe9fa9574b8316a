@testable import Benchmarks
import Foundation
import Training
import XCTest

final class StepMirrorTests: XCTestCase {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Recipes")

    /// The value after `flag` in the mirror's arguments (nil when the flag is absent).
    func value(_ flag: String, _ arguments: [String], count: Int = 1) -> [String]? {
        arguments.firstIndex(of: flag).map { Array(arguments[($0 + 1)...($0 + count)]) }
    }

    /// Every recipe a user runs has its PyTorch anchor in `bench step`, with the recipe's own loss:
    /// its weights, temperature, and the conv MCL's alignment loss aligns.
    func testEveryShippedRecipeHasAMirrorCarryingItsLoss() throws {
        let shipped = try FileManager.default.contentsOfDirectory(atPath: Self.recipes.path).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(shipped.count, 9)
        for name in shipped {
            let recipe = try Recipe.load(Self.recipes.appendingPathComponent(name).path)
            XCTAssertTrue(StepBenchmark(recipe: recipe).mirrorable, name)
        }
        let quickstart = StepBenchmark(recipe: try Recipe.load(Self.recipes.appendingPathComponent("quickstart.yaml").path)).mirrorArguments
        XCTAssertEqual(value("--cross-weight", quickstart), ["4.0"])
        XCTAssertEqual(value("--motion-intra-weight", quickstart), ["1.0"])
        XCTAssertEqual(value("--temperature", quickstart), ["0.1"])
        XCTAssertNil(value("--alignment", quickstart))

        let last = try Recipe.load(Self.recipes.appendingPathComponent("mcl.yaml").path, overrides: ["loss.alignment_layer=last"])
        XCTAssertEqual(value("--alignment-layer", StepBenchmark(recipe: last).mirrorArguments), ["layer4.0.conv2"], "last, resolved")
        let mcl = try Recipe.load(Self.recipes.appendingPathComponent("mcl.yaml").path, overrides: ["loss.alignment_temporal=0.5"])
        let arguments = StepBenchmark(recipe: mcl).mirrorArguments
        XCTAssertEqual(value("--alignment-layer", arguments), ["layer3.0.conv2"])
        XCTAssertEqual(value("--alignment-terms", arguments, count: 3), ["1.0", "0.5", "1.0"])
        // Grad-CAM's activation weighting is not in the mirror
        let activation = try Recipe.load(Self.recipes.appendingPathComponent("mcl.yaml").path, overrides: ["loss.alignment_weighting=activation"])
        XCTAssertFalse(StepBenchmark(recipe: activation).mirrorable)
    }
}
