import DataHDF5
import Foundation
@testable import Training
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

    /// The Markdown table's long bounds are grouped by thousands; shorter numbers stay as they are.
    func testTheMarkdownTableGroupsLongNumbers() {
        XCTAssertEqual(RecipeKey.groupingLongNumbers("an integer in 0...4294967295"), "an integer in 0...4,294,967,295")
        XCTAssertEqual(RecipeKey.groupingLongNumbers("1000000 and 65536, 12345678"), "1,000,000 and 65536, 12,345,678")
        XCTAssertNil(RecipeKey.markdownTable.range(of: "[0-9]{7}", options: .regularExpression), "a bound of 7 digits or more left ungrouped")
    }

    func testShippedRecipesLoadAndExtendTheirBase() throws {
        for name in ["quickstart", "visual-only", "supervised", "maclr-motion-intra", "maclr-r2plus1d"] {
            XCTAssertNoThrow(try Recipe.load(Self.recipes.appendingPathComponent("\(name).yaml").path), name)
        }
        let v = try Recipe.load(Self.recipes.appendingPathComponent("visual-only.yaml").path)
        XCTAssertEqual(v.model.motionPathway, .none)
        XCTAssertEqual(v.optim.lr, 0.0003)             // from base.yaml
        XCTAssertEqual(v.model.`init`, .pytorch)
        XCTAssertEqual(v.optim.optimizer, .adamw)
        XCTAssertEqual(v.data.blurSigma.range, 0.1...0.5)
        XCTAssertEqual(v.optim.weightDecay, 1e-4)      // '1e-4' in YAML
        XCTAssertEqual(v.data.positiveGap.range, 0.5...10)
        let paper = try Recipe.load(Self.recipes.appendingPathComponent("maclr-r2plus1d.yaml").path)
        XCTAssertEqual(paper.model.queueSize, 65536)
        XCTAssertEqual(paper.model.momentum, 0.999)
        XCTAssertEqual(paper.model.`init`, .torchvision)
        XCTAssertEqual(paper.optim.minLr, 0)
        XCTAssertTrue(paper.data.augment)
        XCTAssertEqual(paper.optim.optimizer, .sgd)
        XCTAssertEqual(paper.optim.lr, 0.1)
    }

    func testProbabilityKeysAreCheckedAndOverridesNameTheirKey() throws {
        let path = try write("p.yaml", "data:\n  blur: 1.5\n")
        XCTAssertThrowsError(try Recipe.load(path)) {
            XCTAssertEqual("\($0)", "\(path): key 'data.blur' must be a number >= 0 and <= 1, got '1.5'")
        }
        var r = try Recipe.load(try write("ok.yaml", "seed: 1\n"), overrides: ["data.grayscale=0", "data.crop_scale=[0.5, 1]"])
        XCTAssertEqual(r.data.grayscale, 0)
        XCTAssertEqual(r.data.cropScale.range, 0.5...1.0)
        XCTAssertEqual(r.augmentation.grayscaleProbability, 0)
        XCTAssertEqual(r.augmentation.cropScale, 0.5...1.0)
        XCTAssertThrowsError(try r.apply(overrides: ["data.color_jiter=0.5"])) {
            XCTAssertTrue("\($0)".contains("'data.color_jitter'"), "\($0)")
        }
    }

    func testMotionFocusedCroppingNeedsTheRandomCropAndTemporalSamplingDoesNot() throws {
        let path = try write("mcl.yaml", "data:\n  augment: false\n  motion_spatial_cropping: true\n")
        XCTAssertThrowsError(try Recipe.load(path)) {
            XCTAssertTrue("\($0)".hasPrefix("\(path): key 'data.motion_spatial_cropping' constrains the random resized crop"), "\($0)")
        }
        let temporal = try Recipe.load(try write("t.yaml", "data:\n  augment: false\n  motion_temporal_sampling: true\n"))
        XCTAssertFalse(temporal.augmentation.enabled)
        XCTAssertTrue(temporal.augmentation.motionTemporalSampling)
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
        XCTAssertThrowsError(try Recipe.load(p1)) { XCTAssertEqual("\($0)", "\(p1): key 'optim.steps' must be an integer >= 1, got 'many'") }
        let p2 = try write("choice.yaml", "model:\n  arch: r4d_18\n")
        XCTAssertThrowsError(try Recipe.load(p2)) { XCTAssertEqual("\($0)", "\(p2): key 'model.arch' must be one of r3d_18, r2plus1d_18, got 'r4d_18'") }
        let p3 = try write("loop.yaml", "extends: loop.yaml\n")
        XCTAssertThrowsError(try Recipe.load(p3)) { XCTAssertTrue("\($0)".contains("cycle"), "\($0)") }
    }

    func testOverridesAndJSONRoundTrip() throws {
        let r = try Recipe.load(Self.recipes.appendingPathComponent("quickstart.yaml").path, overrides: ["optim.steps=7", "seed=3"])
        XCTAssertEqual(r.optim.steps, 7); XCTAssertEqual(r.seed, 3)
        XCTAssertThrowsError(try Recipe.load(Self.recipes.appendingPathComponent("quickstart.yaml").path, overrides: ["optim.stepz=7"]))
        let back = try Recipe.fromJSON(try r.json(), source: "checkpoint")
        XCTAssertEqual(back.values, r.values)
        XCTAssertEqual(RecipeKey.all.count, Set(RecipeKey.all.map(\.key)).count)
        XCTAssertTrue(RecipeKey.all.allSatisfy { !$0.doc.isEmpty })
    }

    /// One kind of fault per key kind: the error is one line naming the file (or --set), the
    /// key, the value and what is valid.
    func testEveryKindOfBadValueIsNamedWithItsValidRange() throws {
        let cases: [(String, String)] = [
            ("optim.batch_size=0", "--set: key 'optim.batch_size' must be an integer in 2...65536, got '0'"),
            ("optim.lr=-1", "--set: key 'optim.lr' must be a number > 0, got '-1'"),
            ("model.width=0", "--set: key 'model.width' must be a number > 0 and <= 8, got '0'"),
            ("eval.clips_per_video=0", "--set: key 'eval.clips_per_video' must be an integer in 1...64, got '0'"),
            ("data.clip_frames=1000", "--set: key 'data.clip_frames' must be an integer in 1...512, got '1000'"),
            ("model.key_bn=sync", "--set: key 'model.key_bn' must be one of shuffle, eval, got 'sync'"),
            ("optim.steps=ten", "--set: key 'optim.steps' must be an integer >= 1, got 'ten'"),
            ("data.augment=3", "--set: key 'data.augment' must be true or false, got '3'"),
            ("model.blocks=[1, 1, 1]", "--set: key 'model.blocks' must be a list of 4 integers in 1...16, got '[1, 1, 1]'"),
            ("data.crop_scale=[0, 1]", "--set: key 'data.crop_scale' must be [min, max] with min <= max, both in (0, 1], got '[0, 1]'"),
            ("data.positive_gap=[2, 1]", "--set: key 'data.positive_gap' must be [min, max] with min <= max, both in [0, 3600], got '[2, 1]'"),
            ("optim.min_lr=0.5", "--set: key 'optim.min_lr' must be at most optim.lr (0.05), got '0.5'"),
        ]
        for (override, message) in cases {
            XCTAssertThrowsError(try Recipe.load(try write("ok.yaml", "seed: 1\n"), overrides: [override]), override) {
                XCTAssertEqual("\($0)", message)
                XCTAssertFalse("\($0)".contains("\n"), "one line")
            }
        }
        let path = try write("neg.yaml", "optim:\n  warmup_steps: -3\n")
        XCTAssertThrowsError(try Recipe.load(path)) {
            XCTAssertEqual("\($0)", "\(path): key 'optim.warmup_steps' must be an integer >= 0, got '-3'")
        }
    }

    /// The typed sections hold every key's value: a change of any key shows in them.
    func testTypedSectionsFollowTheKeys() throws {
        var r = Recipe.defaults
        try r.apply(overrides: ["data.split=null"])
        XCTAssertNil(r.data.splitName)
        try r.set("model.motion_pathway", "video")
        XCTAssertEqual(r.model.motionPathway, .video)
        try r.set("data.motion_input", "motion_boundaries")
        XCTAssertEqual(r.data.motionInput, .motionBoundaries)
        try r.set("loss.cross_modal_weight", 2)
        XCTAssertEqual(r.loss.crossModalWeight, 2)
        XCTAssertThrowsError(try r.set("optim.accumulate", 0))
        XCTAssertEqual(r.optim.accumulate, 1, "a refused value leaves the recipe as it was")
    }

    /// A valid value of `spec` other than `current`.
    static func anotherValue(_ spec: RecipeKey.Spec, _ current: AnyHashable) -> Any {
        switch spec.kind {
        case .int(let range): let i = current as! Int; return range.contains(i + 1) ? i + 1 : i - 1
        case .number(let min, _, _):
            // below the default, or just above the minimum (optim.min_lr must stay under optim.lr)
            let d = current as! Double; return d > min ? (d + min) / 2 : min + 0.01
        case .bool: return !(current as! Bool)
        case .string: return spec.key == "loss.alignment_layer" ? "layer3.0.conv2" : (current as! String) + "-other"
        case .optionalString: return (current as! String) + "-other"
        case .span(let within, _):
            let span = current as! [Double]; return [(span[0] + within.lowerBound) / 2 + 0.001, span[1]]
        case .intList(_, let range):
            var list = current as! [Int]; list[0] = range.contains(list[0] + 1) ? list[0] + 1 : list[0] - 1; return list
        case .choice(let options): return options.first { $0 != current as! String }!
        }
    }

    /// Every key of the schema reaches a field of the typed sections (the library configs are
    /// built from them) and comes back from it unchanged, at its default and at another value.
    func testEverySchemaKeyReachesATypedFieldAndComesBackUnchanged() throws {
        let defaults = Recipe.defaults
        let keys = Set(RecipeKey.all.map(\.key)), typed = Set(defaults.typedValues.keys)
        XCTAssertEqual(keys.subtracting(typed), [], "schema keys without a typed field")
        XCTAssertEqual(typed.subtracting(keys), [], "typed fields without a schema key")
        var supervised = defaults
        try supervised.set("loss.objective", "supervised")
        for spec in RecipeKey.all {
            XCTAssertEqual(defaults.typedValues[spec.key], defaults.values[spec.key], spec.key)
            // the classifier's keys need the supervised objective
            let base = ["model.dropout", "model.init_from"].contains(spec.key) ? supervised : defaults
            var r = base
            let other = Self.anotherValue(spec, base.values[spec.key]!)
            try r.set(spec.key, other)
            XCTAssertNotEqual(r.values[spec.key], base.values[spec.key], "\(spec.key): the test's other value")
            XCTAssertEqual(r.typedValues[spec.key], r.values[spec.key], "\(spec.key) set to \(other) does not reach its typed field unchanged")
            let changed = Set(RecipeKey.all.map(\.key).filter { r.typedValues[$0] != base.typedValues[$0] })
            XCTAssertEqual(changed, [spec.key], "setting \(spec.key) changes only its own field")
        }
    }
}
