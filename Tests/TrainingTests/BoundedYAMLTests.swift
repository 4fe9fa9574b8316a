import Training
import XCTest

/// Every YAML document maclr reads is bounded before it is built.
final class BoundedYAMLTests: XCTestCase {
    func bound(_ text: String, _ bounds: BoundedYAML.Bounds = .init()) -> String? {
        do { _ = try BoundedYAML.load(text, source: "f.yaml", bounds: bounds); return nil } catch { return "\(error)" }
    }

    func testEachBoundIsNamedAndOrdinaryDocumentsPass() {
        var small = BoundedYAML.Bounds()
        small.nodes = 20; small.depth = 3; small.scalarCharacters = 5; small.fileBytes = 200
        // ten aliases of a three-item list: 1 + 10 x 4 = 41 values expanded, from a few lines
        XCTAssertEqual(bound("a: &a [1, 2, 3]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n", small),
                       "f.yaml: more than 20 values once its aliases are expanded (an alias bomb?)")
        XCTAssertEqual(bound("a: [[[[1]]]]\n", small), "f.yaml: nested 5 levels deep, more than the 3 allowed")
        XCTAssertEqual(bound("a:\n  b:\n    c:\n      d: 1\n", small), "f.yaml: nested 4 levels deep, more than the 3 allowed")
        XCTAssertEqual(bound("- - - - 1\n", small), "f.yaml: nested 4 levels deep, more than the 3 allowed")
        XCTAssertEqual(bound("a: abcdefgh\n", small), "f.yaml: a value of 8 characters, more than the 5 allowed")
        XCTAssertEqual(bound(String(repeating: "#", count: 201), small), "f.yaml: 201 bytes, more than the 200 a recipe or sweep file may have")
        // brackets inside quotes and comments are not nesting
        XCTAssertNil(bound("a: \"[[[[\" # [[[[\n", small))
        XCTAssertNil(bound("a: {b: [1, 2]}\n", small))
        XCTAssertNil(bound("a: &a [1, 2]\nb: *a\n", small))
        XCTAssertTrue(bound("a: [1, 2\n", small)?.hasPrefix("f.yaml: not valid YAML") ?? false)
    }

    func testTheShippedRecipesAndSweepsAreFarFromTheBounds() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var tight = BoundedYAML.Bounds()
        tight.depth = 8; tight.nodes = 500; tight.fileBytes = 16_384
        for folder in ["Recipes", "Recipes/ablations"] {
            let url = root.appendingPathComponent(folder)
            for name in try FileManager.default.contentsOfDirectory(atPath: url.path) where name.hasSuffix(".yaml") {
                let text = try String(contentsOf: url.appendingPathComponent(name), encoding: .utf8)
                XCTAssertNil(bound(text, tight), "\(folder)/\(name)")
            }
        }
    }
}
