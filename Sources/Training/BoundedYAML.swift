import Foundation
import Yams

/// YAML read with bounds, checked before the document is built: recipes and sweep files travel
/// between people and machines, and a well-formed file of a few lines can otherwise take the
/// machine's memory (aliases of aliases expand exponentially) or its stack (deep nesting).
/// Each refusal is one line naming the file and the bound.
public enum BoundedYAML {
    public struct Bounds: Sendable {
        /// Bytes of the file.
        public var fileBytes = 1 << 20
        /// Nested sequences and mappings, in flow ([ {) or block (indentation) style.
        public var depth = 64
        /// Nodes of the document with every alias expanded.
        public var nodes = 100_000
        /// Characters of one scalar.
        public var scalarCharacters = 65_536
        public init() {}
    }

    /// A bound a document passes: one line naming the file and the bound.
    public struct Exceeded: Error, CustomStringConvertible {
        public let description: String
    }

    /// The text of the file at `path`, its size checked before it is read; nil when it cannot be read.
    public static func read(_ path: String, bounds: Bounds = Bounds()) throws -> String? {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > bounds.fileBytes {
            throw Exceeded(description: "\(path): \(size) bytes, more than the \(bounds.fileBytes) a recipe or sweep file may have")
        }
        return try? String(contentsOf: URL(fileURLWithPath: path), encoding: .utf8)
    }

    /// The document of `text` from `source` as Swift values (what `Yams.load` gives), or nil for an empty one.
    public static func load(_ text: String, source: String, bounds: Bounds = Bounds()) throws -> Any? {
        guard text.utf8.count <= bounds.fileBytes else {
            throw Exceeded(description: "\(source): \(text.utf8.count) bytes, more than the \(bounds.fileBytes) a recipe or sweep file may have")
        }
        let depth = nestingDepth(text)
        guard depth <= bounds.depth else {
            throw Exceeded(description: "\(source): nested \(depth) levels deep, more than the \(bounds.depth) allowed")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw RecipeError("\(source): not valid YAML (\(error))") }
        guard let node else { return nil }
        // Composing shares an alias's node instead of copying it, so the document is still small
        // here; counting stops at the bound, before an expansion could grow.
        var count = 0
        try countNodes(node, &count, source: source, bounds: bounds)
        // what Yams.load gives, from the node already composed (no second parse)
        return node.any
    }

    /// Counts `node`'s expanded nodes into `count`, throwing once it passes the bound.
    static func countNodes(_ node: Node, _ count: inout Int, source: String, bounds: Bounds) throws {
        count += 1
        guard count <= bounds.nodes else {
            throw Exceeded(description: "\(source): more than \(bounds.nodes) values once its aliases are expanded (an alias bomb?)")
        }
        switch node {
        case .scalar(let s):
            guard s.string.count <= bounds.scalarCharacters else {
                throw Exceeded(description: "\(source): a value of \(s.string.count) characters, more than the \(bounds.scalarCharacters) allowed")
            }
        case .sequence(let items): for item in items { try countNodes(item, &count, source: source, bounds: bounds) }
        case .mapping(let pairs):
            for (key, value) in pairs {
                try countNodes(key, &count, source: source, bounds: bounds)
                try countNodes(value, &count, source: source, bounds: bounds)
            }
        }
    }

    /// An upper bound on the document's nesting, from its text alone (so before the parser's
    /// recursion): flow brackets outside quotes, plus block levels counted from each line's
    /// indentation and its "- " sequence markers.
    static func nestingDepth(_ text: String) -> Int {
        var deepest = 0, brackets = 0
        var quote: Character? = nil
        var indents: [Int] = []          // indentation of the block levels open on the current line
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let content = line.drop { $0 == " " }
            if quote == nil, brackets == 0, !content.isEmpty, !content.hasPrefix("#") {
                let indent = line.count - content.count
                while let last = indents.last, last >= indent { indents.removeLast() }
                // a line that opens a flow collection is counted by its brackets
                if content.first != "[" && content.first != "{" { indents.append(indent) }
                // "- - x": the line's sequence, and one more in it per further marker
                var rest = content.hasPrefix("- ") ? content.dropFirst(2) : content[...]
                while rest.hasPrefix("- ") || rest == "-" {
                    indents.append((indents.last ?? indent) + 1)
                    rest = rest.dropFirst(2)
                }
            }
            for c in line {
                if let q = quote { if c == q { quote = nil }; continue }
                switch c {
                case "\"", "'": quote = c
                case "#": break
                case "[", "{": brackets += 1; deepest = max(deepest, indents.count + brackets)
                case "]", "}": brackets = max(0, brackets - 1)
                default: continue
                }
                if c == "#" { break }
            }
            if quote == "'" || quote == "\"" { quote = nil }      // a quote does not span lines here: count on
            deepest = max(deepest, indents.count + brackets)
        }
        return deepest
    }
}
