import Foundation
import XCTest

/// The README's quickstart, run as written (at small sizes), and bad recipe values as a user meets them.
final class ReadmeAndRecipeTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    struct MissingBlock: Error, CustomStringConvertible { let description: String }

    /// The README's text between `<!-- name -->` and `<!-- /name -->`; an error when the markers are gone.
    static func readmeBlock(_ name: String) throws -> Substring {
        let readme = try String(contentsOf: repository.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "<!-- \(name) -->"), let end = readme.range(of: "<!-- /\(name) -->") else {
            throw MissingBlock(description: "README.md has no \(name) block (<!-- \(name) --> ... <!-- /\(name) -->)")
        }
        return readme[start.upperBound..<end.lowerBound]
    }

    /// The command lines of the README's quickstart block, each split into its words.
    static func quickstartCommands() throws -> [[String]] {
        var commands: [[String]] = []
        for line in try readmeBlock("quickstart").split(separator: "\n") {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words: [String] = code.split(separator: " ").map { String($0) }
            if words.first == "maclr" { commands.append(words) }
        }
        return commands
    }

    /// Every quickstart line runs and succeeds, with its output folder moved to a scratch one
    /// and sizes cut down (options appended: the last value of an option wins, later --set
    /// keys override earlier ones).
    func testTheReadmeQuickstartRuns() throws {
        let commands = try Self.quickstartCommands()
        XCTAssertEqual(commands.map { $0[1] }, ["synth", "prepare", "inspect", "pretrain", "eval", "finetune", "export"])
        let small: [String: [String]] = [
            "synth": ["--classes", "2", "--per-class", "4", "--frames", "16", "--size", "32"],
            "prepare": ["--size", "32x32", "--workers", "1"],
            "pretrain": ["--set", "optim.steps=3", "--set", "optim.warmup_steps=1", "--set", "optim.batch_size=4",
                         "--set", "data.crop=32", "--set", "model.head_hidden=16", "--set", "eval.probe_iterations=20",
                         "--set", "eval.clips_per_video=1", "--threads", "2"],
            "eval": ["--set", "eval.probe_iterations=20", "--set", "eval.clips_per_video=1", "--set", "data.crop=32", "--threads", "2"],
            "finetune": ["--set", "optim.steps=2", "--set", "optim.warmup_steps=1", "--set", "optim.batch_size=4", "--set", "data.crop=32",
                         "--set", "eval.clips_per_video=1", "--threads", "2"],
        ]
        for words in commands {
            let args = words.dropFirst().map { $0.replacingOccurrences(of: "runs/demo", with: dir.path) } + (small[words[1]] ?? [])
            let r = try runMaclr(Array(args), in: Self.repository)
            XCTAssertEqual(r.status, 0, "\(words.joined(separator: " ")): \(r.err)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("encoder.safetensors").path))
    }

    /// The README's table of recipe keys is what `maclr recipe --markdown` prints: every key,
    /// its default, doc and valid values, as the schema has them.
    func testTheReadmeRecipeTableIsTheSchema() throws {
        let r = try runMaclr(["recipe", "--markdown"])
        XCTAssertEqual(r.status, 0, r.err)
        let table = try Self.readmeBlock("recipe-keys").trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(table, r.out.trimmingCharacters(in: .whitespacesAndNewlines),
                       "README.md's recipe table differs from `maclr recipe --markdown`: paste its output between the recipe-keys markers")
    }

    /// A bad value, in a recipe file or a --set, is one line naming the file, the key, the value
    /// and the valid values; the exit status is non-zero and the run folder is never created.
    func testBadRecipeValuesStopBeforeAnythingIsWritten() throws {
        let output = dir.appendingPathComponent("run")
        let recipe = dir.appendingPathComponent("r.yaml")
        try "extends: \(Self.repository.path)/Recipes/quickstart.yaml\ntrain:\n  output: \(output.path)\n"
            .write(to: recipe, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["--set", "optim.batch_size=0"], "--set: key 'optim.batch_size' must be an integer in 2...65536, got '0'"),
            (["--set", "optim.lr=-1"], "--set: key 'optim.lr' must be a number > 0, got '-1'"),
            (["--set", "data.clip_frames=4096"], "--set: key 'data.clip_frames' must be an integer in 1...512, got '4096'"),
            (["--set", "model.arch=r4d_18"], "--set: key 'model.arch' must be one of r3d_18, r2plus1d_18, got 'r4d_18'"),
            (["--set", "optim.steps=lots"], "--set: key 'optim.steps' must be an integer >= 1, got 'lots'"),
        ]
        for (args, message) in cases {
            let r = try runMaclr(["pretrain", recipe.path] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, r.err)
            XCTAssertTrue(r.err.contains(message), "\(args): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "\(args) wrote the run folder")
        }
        // in the file itself: the error names the file
        let bad = dir.appendingPathComponent("bad.yaml")
        try "extends: r.yaml\neval:\n  clips_per_video: 0\n".write(to: bad, atomically: true, encoding: .utf8)
        let r = try runMaclr(["pretrain", bad.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("\(bad.path): key 'eval.clips_per_video' must be an integer in 1...64, got '0'"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }
}
