import DataHDF5
import Foundation
import Training
import XCTest

final class RecipeTests: XCTestCase {
    static let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Recipes")
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("recipe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testShippedRecipesLoadAndExtendTheirBase() throws {
        for name in ["quickstart", "visual-only", "supervised", "maclr-motion-intra", "maclr-r2plus1d"] {
            XCTAssertNoThrow(try Recipe.load(Self.recipes.appendingPathComponent("\(name).yaml").path), name)
        }
        let v = try Recipe.load(Self.recipes.appendingPathComponent("visual-only.yaml").path)
        XCTAssertEqual(v.string("model.motion_pathway"), "none")
        XCTAssertEqual(v.double("optim.lr"), 0.0003)             // from base.yaml
        XCTAssertEqual(v.string("model.init"), "pytorch")
        XCTAssertEqual(v.string("optim.optimizer"), "adamw")
        XCTAssertEqual(v.doubles("data.blur_sigma"), [0.1, 0.5])
        XCTAssertEqual(v.double("optim.weight_decay"), 1e-4)      // '1e-4' in YAML
        XCTAssertEqual(v.doubles("data.positive_gap"), [0.5, 10])
        let paper = try Recipe.load(Self.recipes.appendingPathComponent("maclr-r2plus1d.yaml").path)
        XCTAssertEqual(paper.int("model.queue_size"), 65536)
        XCTAssertEqual(paper.double("model.momentum"), 0.999)
        XCTAssertEqual(paper.string("model.init"), "torchvision")
        XCTAssertEqual(paper.double("optim.min_lr"), 0)
        XCTAssertTrue(paper.bool("data.augment"))
        XCTAssertEqual(paper.string("optim.optimizer"), "sgd")
        XCTAssertEqual(paper.double("optim.lr"), 0.1)
    }

    func testProbabilityKeysAreCheckedAndOverridesNameTheirKey() throws {
        let path = try write("p.yaml", "data:\n  blur: 1.5\n")
        XCTAssertThrowsError(try Recipe.load(path)) {
            XCTAssertEqual("\($0)", "\(path): key 'data.blur' must be a probability in [0, 1], got '1.5'")
        }
        var r = try Recipe.load(try write("ok.yaml", "seed: 1\n"), overrides: ["data.grayscale=0", "data.crop_scale=[0.5, 1]"])
        XCTAssertEqual(r.double("data.grayscale"), 0)
        XCTAssertEqual(r.doubleRange("data.crop_scale"), 0.5...1.0)
        XCTAssertEqual(r.augmentation.grayscaleProbability, 0)
        XCTAssertEqual(r.augmentation.cropScale, 0.5...1.0)
        XCTAssertThrowsError(try r.apply(overrides: ["data.color_jiter=0.5"])) {
            XCTAssertTrue("\($0)".contains("'data.color_jitter'"), "\($0)")
        }
    }

    func testUnknownKeyIsNamedWithTheNearestValidKey() throws {
        let path = try write("typo.yaml", "optim:\n  weight_decy: 0.1\n")
        XCTAssertThrowsError(try Recipe.load(path)) {
            XCTAssertEqual("\($0)", "\(path): unknown key 'optim.weight_decy' (did you mean 'optim.weight_decay'?)")
        }
        let path2 = try write("typo2.yaml", "model:\n  queue_sise: 10\n")
        XCTAssertThrowsError(try Recipe.load(path2)) { XCTAssertEqual("\($0)", "\(path2): unknown key 'model.queue_sise' (did you mean 'model.queue_size'?)") }
        let path3 = try write("top.yaml", "sed: 1\n")
        XCTAssertThrowsError(try Recipe.load(path3)) { XCTAssertEqual("\($0)", "\(path3): unknown key 'sed' (did you mean 'seed'?)") }
    }

    func testWrongTypeAndBadChoiceAreNamed() throws {
        let p1 = try write("type.yaml", "optim:\n  steps: many\n")
        XCTAssertThrowsError(try Recipe.load(p1)) { XCTAssertEqual("\($0)", "\(p1): key 'optim.steps' must be an integer, got 'many'") }
        let p2 = try write("choice.yaml", "model:\n  arch: r4d_18\n")
        XCTAssertThrowsError(try Recipe.load(p2)) { XCTAssertEqual("\($0)", "\(p2): key 'model.arch' must be one of r2plus1d_18, r3d_18, got 'r4d_18'") }
        let p3 = try write("loop.yaml", "extends: loop.yaml\n")
        XCTAssertThrowsError(try Recipe.load(p3)) { XCTAssertTrue("\($0)".contains("cycle"), "\($0)") }
    }

    func testOverridesAndJSONRoundTrip() throws {
        let r = try Recipe.load(Self.recipes.appendingPathComponent("quickstart.yaml").path, overrides: ["optim.steps=7", "seed=3"])
        XCTAssertEqual(r.int("optim.steps"), 7); XCTAssertEqual(r.int("seed"), 3)
        XCTAssertThrowsError(try Recipe.load(Self.recipes.appendingPathComponent("quickstart.yaml").path, overrides: ["optim.stepz=7"]))
        let back = try Recipe.fromJSON(try r.json(), source: "checkpoint")
        XCTAssertEqual(back.values, r.values)
        XCTAssertEqual(RecipeKey.all.count, Set(RecipeKey.all.map(\.key)).count)
        XCTAssertTrue(RecipeKey.all.allSatisfy { !$0.doc.isEmpty })
    }
}
