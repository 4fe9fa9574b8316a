import Foundation
import SwiftCSV

/// How `maclr prepare` reads its input: the CSV / class-folder forms, or the folder layout and
/// split files of a public dataset as it is distributed, every split kept in one dataset.
public enum DatasetLayout: String, CaseIterable, Sendable {
    /// A CSV of path,label[,split], a folder of class sub-folders, or a folder of video files.
    case files
    /// `UCF-101/<Class>/v_<Class>_gGG_cCC.avi`; `ucfTrainTestlist/` with classInd.txt,
    /// trainlist0{1,2,3}.txt (path, 1-based label) and testlist0{1,2,3}.txt (path).
    case ucf101
    /// `<class>/<video>.avi`; `<class>_test_split{1,2,3}.txt` with lines `<video> <id>`
    /// (1 training, 2 test, 0 unused).
    case hmdb51
    /// Annotation CSVs `label,youtube_id,time_start,time_end,split`; clips
    /// `<youtube_id>_<start:06d>_<end:06d>.mp4` in label folders or flat.
    case kinetics
    /// Something-Something v2: the labels JSON and the train / validation (/ test) JSON of
    /// `{id, template}` entries; videos `<id>.webm`.
    case ssv2

    /// Where the split files are when `--split-files` does not say.
    func defaultSplitFiles(_ videos: URL) -> URL {
        switch self {
        case .ucf101: return videos.appendingPathComponent("ucfTrainTestlist")
        case .hmdb51: return videos.appendingPathComponent("testTrainMulti_7030_splits")
        case .files, .kinetics, .ssv2: return videos
        }
    }

    /// Reads the layout under `videos` with its split files (`splitFiles`, or where the dataset
    /// puts them). A bad split file is one `PrepareError` naming the file and the line.
    public func read(videos: URL, splitFiles: URL? = nil) throws -> LayoutListing {
        let files = splitFiles ?? defaultSplitFiles(videos)
        switch self {
        case .files: return LayoutListing(inputs: try Preparation.discover(videos), classes: [], listed: [:])
        case .ucf101:
            let root = FileManager.default.fileExists(atPath: videos.appendingPathComponent("UCF-101").path)
                ? videos.appendingPathComponent("UCF-101") : videos
            return try LayoutReader(root: root).ucf101(files)
        case .hmdb51: return try LayoutReader(root: videos).hmdb51(files)
        case .kinetics: return try LayoutReader(root: videos).kinetics(files)
        case .ssv2: return try LayoutReader(root: videos).ssv2(files)
        }
    }
}

/// What a layout lists: the videos found with their labels and splits, the classes in the
/// dataset's own order, and per split what was listed and what is missing on disk.
public struct LayoutListing {
    public var inputs: [Preparation.Input]
    public var classes: [String]
    /// Per split, the names of the listed videos that have no file.
    public var missing: [String: [String]] = [:]
    /// Per split, how many videos its files list.
    public var listed: [String: Int]

    init(inputs: [Preparation.Input], classes: [String], listed: [String: Int], missing: [String: [String]] = [:]) {
        self.inputs = inputs; self.classes = classes; self.listed = listed; self.missing = missing
    }

    /// How many of `split`'s listed videos have a file.
    public func found(_ split: String) -> Int { (listed[split] ?? 0) - (missing[split]?.count ?? 0) }

    /// "N videos found, C classes; split found, ..." (`maclr prepare --check`).
    public var summary: String {
        "\(inputs.count) videos found, \(classes.count) classes"
            + (listed.isEmpty ? "" : "; " + listed.keys.sorted().map { "\($0) \(found($0))" }.joined(separator: ", "))
    }

    /// Per split: listed, found, missing; then the first few missing names.
    public var report: [String] {
        var lines: [String] = []
        for split in listed.keys.sorted() {
            let gone = missing[split]?.count ?? 0
            lines.append("\(split): \(listed[split]!) listed, \(found(split)) found" + (gone == 0 ? "" : ", \(gone) missing"))
        }
        let allMissing = Array(Set(missing.values.joined())).sorted()
        if !allMissing.isEmpty {
            lines.append("missing: \(allMissing.count) listed video(s) have no file, e.g. \(allMissing.prefix(5).joined(separator: ", "))")
        }
        return lines
    }
}

/// The readers of the official layouts: each collects (listed name, label, split) and resolves
/// the names to files under `root`.
struct LayoutReader {
    /// Every video file under the root, by path relative to it; and the same lower-cased, for the
    /// official lists whose case differs from the files' (UCF101's HandStandPushups).
    let byPath: [String: String]
    let byLowerPath: [String: String]
    let byStem: [String: String]

    init(root: URL) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw PrepareError("\(root.path): no such folder of videos")
        }
        var paths: [String: String] = [:], lower: [String: String] = [:], stems: [String: String] = [:]
        let base = root.standardizedFileURL.path
        if let walker = FileManager.default.enumerator(atPath: base) {
            for case let relative as String in walker where Preparation.videoExtensions.contains((relative as NSString).pathExtension.lowercased()) {
                let full = base + "/" + relative
                paths[relative] = full
                lower[relative.lowercased()] = full
                stems[((relative as NSString).lastPathComponent as NSString).deletingPathExtension] = full
            }
        }
        byPath = paths; byLowerPath = lower; byStem = stems
    }

    /// A listed video's file: its relative path as listed, else the same in another case.
    func file(relative: String) -> String? { byPath[relative] ?? byLowerPath[relative.lowercased()] }

    static func lines(_ url: URL) throws -> [(number: Int, text: String)] {
        let text = try BoundedInput.text(url, what: "split file")
        // "\r\n" (the official lists' line end) is one Character in Swift: split on any newline
        return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
            .map { ($0.offset + 1, $0.element.trimmingCharacters(in: .whitespacesAndNewlines)) }.filter { !$0.text.isEmpty }
    }

    /// What the split files list: each name once, in order, with its label and splits.
    struct Entries {
        var order: [String] = []
        var label: [String: String?] = [:]
        var splits: [String: [String]] = [:]
        var listed: [String: Int] = [:]
        var firstSeen: [String: String] = [:]    // name -> "file:line" of its first listing

        mutating func add(_ name: String, label l: String?, split: String, at place: String) throws {
            if label[name] == nil { order.append(name); label[name] = .some(l) }
            else if let known = label[name]!, let l, known != l {
                throw PrepareError("\(place): '\(name)' is labelled \(l) here and \(known) at \(firstSeen[name] ?? "an earlier line")")
            }
            if splits[name, default: []].contains(split) { throw PrepareError("\(place): '\(name)' is listed twice in split \(split)") }
            firstSeen[name] = firstSeen[name] ?? place
            splits[name, default: []].append(split)
            listed[split, default: 0] += 1
        }
    }

    /// Checks the listing, then resolves each name to its file (a file listed under two spellings
    /// of its name is one input). The splits of each pair in `disjoint` (train<k> and test<k>)
    /// must share no video, by listed name and by file; no split may be empty. `file(split)`
    /// names the split file an error points at.
    func listing(_ e: Entries, classes: [String], disjoint pairs: [(String, String)], file: (String) -> String,
                 resolve: (String) -> String?) throws -> LayoutListing {
        func overlap(_ splits: [String]) -> (String, String)? { pairs.first { splits.contains($0.0) && splits.contains($0.1) } }
        for name in e.order {
            if let (a, b) = overlap(e.splits[name]!) { throw PrepareError("\(file(b)): '\(name)' is in both \(a) and \(b)") }
        }
        for (split, count) in e.listed where count == 0 { throw PrepareError("\(file(split)): split \(split) lists no video") }
        var inputs: [Preparation.Input] = [], missing: [String: [String]] = [:]
        var at: [String: Int] = [:]
        for name in e.order {
            if let path = resolve(name) {
                if let i = at[path] {
                    inputs[i].splits += e.splits[name]!.filter { !inputs[i].splits.contains($0) }
                    if let (a, b) = overlap(inputs[i].splits) {
                        throw PrepareError("\(path): listed in both \(a) and \(b) (under two spellings of its name)")
                    }
                } else {
                    at[path] = inputs.count
                    inputs.append(Preparation.Input(path: path, label: e.label[name]!, splits: e.splits[name]!))
                }
            } else {
                for split in e.splits[name]! { missing[split, default: []].append(name) }
            }
        }
        return LayoutListing(inputs: inputs, classes: classes, listed: e.listed, missing: missing)
    }

    /// An .avi listed as `<class>/<video>` (UCF101, HMDB51): its path as listed, in any case, or
    /// its file name anywhere under the root.
    func avi(_ name: String) -> String? { file(relative: name + ".avi") ?? byStem[(name as NSString).lastPathComponent] }

    // MARK: - UCF101

    func ucf101(_ dir: URL) throws -> LayoutListing {
        let classFile = dir.appendingPathComponent("classInd.txt")
        var classes: [String] = []
        for (n, line) in try Self.lines(classFile) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let index = Int(parts[0]), index == classes.count + 1 else {
                throw PrepareError("\(classFile.path):\(n): expected '<index> <Class>' with indices 1, 2, ... in order, got '\(line)'")
            }
            classes.append(String(parts[1]))
        }
        guard !classes.isEmpty else { throw PrepareError("\(classFile.path): lists no class") }
        let byLowerName = Dictionary(classes.map { ($0.lowercased(), $0) }, uniquingKeysWith: { a, _ in a })
        var e = Entries()
        var pairs: [(String, String)] = []
        var fileOf: [String: String] = [:]
        var groups: [String: [String: String]] = [:]   // split -> "class/gGG" -> "file:line"
        for k in 1...3 {
            let train = dir.appendingPathComponent(String(format: "trainlist%02d.txt", k))
            let test = dir.appendingPathComponent(String(format: "testlist%02d.txt", k))
            let (hasTrain, hasTest) = (FileManager.default.fileExists(atPath: train.path), FileManager.default.fileExists(atPath: test.path))
            guard hasTrain || hasTest else { continue }
            guard hasTrain && hasTest else { throw PrepareError("\((hasTrain ? test : train).path): missing (split \(k) needs both lists)") }
            for (url, split, labelled) in [(train, "train\(k)", true), (test, "test\(k)", false)] {
                fileOf[split] = url.path
                e.listed[split] = e.listed[split] ?? 0
                for (n, line) in try Self.lines(url) {
                    let place = "\(url.path):\(n)"
                    let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                    guard parts.count == (labelled ? 2 : 1), parts[0].contains("/") else {
                        throw PrepareError("\(place): expected '<Class>/<video>.avi\(labelled ? " <label>" : "")', got '\(line)'")
                    }
                    let folder = String(parts[0].split(separator: "/")[0])
                    guard let cls = byLowerName[folder.lowercased()] else {
                        throw PrepareError("\(place): class '\(folder)' is not in \(classFile.lastPathComponent)")
                    }
                    if labelled {
                        guard let index = Int(parts[1]), (1...classes.count).contains(index) else {
                            throw PrepareError("\(place): label '\(parts[1])' is not a class index 1...\(classes.count)")
                        }
                        guard classes[index - 1] == cls else {
                            throw PrepareError("\(place): label \(index) is \(classes[index - 1]), but the video is in \(folder)/")
                        }
                    }
                    let name = (parts[0] as NSString).deletingPathExtension
                    try e.add(name, label: cls, split: split, at: place)
                    // a group (one person, one setting) of a class must not be in training and test
                    if let range = name.range(of: #"_g\d+_c"#, options: .regularExpression) {
                        let group = cls.lowercased() + "/" + name[range].dropFirst(2).dropLast(2)
                        let other = labelled ? "test\(k)" : "train\(k)"
                        if let seen = groups[other]?[group] {
                            throw PrepareError("\(place): group \(group) of split \(k) is also in \(other) (\(seen))")
                        }
                        groups[split, default: [:]][group] = place
                    }
                }
            }
            pairs.append(("train\(k)", "test\(k)"))
        }
        guard !pairs.isEmpty else { throw PrepareError("\(dir.path): no trainlist0k.txt / testlist0k.txt (k = 1, 2, 3)") }
        return try listing(e, classes: classes, disjoint: pairs, file: { fileOf[$0] ?? dir.path }, resolve: avi)
    }

    // MARK: - HMDB51

    func hmdb51(_ dir: URL) throws -> LayoutListing {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.range(of: #"_test_split[123]\.txt$"#, options: .regularExpression) != nil }
        guard !names.isEmpty else { throw PrepareError("\(dir.path): no <class>_test_split{1,2,3}.txt files") }
        let classes = Array(Set(names.map { String($0[..<$0.range(of: "_test_split")!.lowerBound]) })).sorted()
        let splitNumbers = Array(Set(names.compactMap { $0.dropLast(4).last.flatMap { Int(String($0)) } })).sorted()
        var e = Entries()
        var fileOf: [String: String] = [:]
        var classOf: [String: (String, String)] = [:]   // video -> (class, place)
        for k in splitNumbers {
            for split in ["train\(k)", "test\(k)"] { e.listed[split] = 0 }
            for cls in classes {
                let url = dir.appendingPathComponent("\(cls)_test_split\(k).txt")
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw PrepareError("\(url.path): missing (split \(k) has files for other classes)")
                }
                fileOf["train\(k)"] = fileOf["train\(k)"] ?? url.path; fileOf["test\(k)"] = fileOf["test\(k)"] ?? url.path
                for (n, line) in try Self.lines(url) {
                    let place = "\(url.path):\(n)"
                    let parts = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                    guard parts.count == 2, let id = Int(parts[1]), (0...2).contains(id) else {
                        throw PrepareError("\(place): expected '<video>.avi <0|1|2>' (0 unused, 1 training, 2 test), got '\(line)'")
                    }
                    let video = (parts[0] as NSString).deletingPathExtension
                    if let (other, seen) = classOf[video], other != cls {
                        throw PrepareError("\(place): '\(video)' is also listed for class \(other) (\(seen))")
                    }
                    classOf[video] = (cls, place)
                    guard id != 0 else { continue }
                    try e.add(cls + "/" + video, label: cls, split: id == 1 ? "train\(k)" : "test\(k)", at: place)
                }
            }
        }
        return try listing(e, classes: classes, disjoint: splitNumbers.map { ("train\($0)", "test\($0)") }, file: { fileOf[$0] ?? dir.path },
                           resolve: avi)
    }

    // MARK: - Kinetics

    func kinetics(_ source: URL) throws -> LayoutListing {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir) else { throw PrepareError("\(source.path): no such annotation file or folder") }
        let csvs = isDir.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []).filter { $0.lowercased().hasSuffix(".csv") }.sorted()
                .map { source.appendingPathComponent($0) }
            : [source]
        guard !csvs.isEmpty else { throw PrepareError("\(source.path): no annotation CSV (label,youtube_id,time_start,time_end,split)") }
        var e = Entries()
        var fileOf: [String: String] = [:]
        let columns = ["label", "youtube_id", "time_start", "time_end", "split"]
        for csv in csvs {
            let text = try BoundedInput.text(csv, what: "annotation CSV")
            let table: CSV<Enumerated>
            do { table = try CSV<Enumerated>(string: text, delimiter: .comma, loadColumns: false) } catch {
                throw PrepareError("\(csv.path): not a CSV (\(error))")
            }
            let header = table.header.map { $0.trimmingCharacters(in: .whitespaces) }
            let at = columns.map { header.firstIndex(of: $0) }
            guard at.allSatisfy({ $0 != nil }) else {
                throw PrepareError("\(csv.path):1: expected the header \(columns.joined(separator: ",")), got '\(header.joined(separator: ","))'")
            }
            for (i, row) in table.rows.enumerated() where !(row.count == 1 && row[0].trimmingCharacters(in: .whitespaces).isEmpty) {
                let place = "\(csv.path):\(i + 2)"
                let field = { (c: Int) -> String? in at[c]! < row.count ? row[at[c]!].trimmingCharacters(in: .whitespaces) : nil }
                guard row.count == header.count, let id = field(1), !id.isEmpty, let start = field(2).flatMap({ Double($0) }),
                      let end = field(3).flatMap({ Double($0) }), start >= 0, end > start, let split = field(4), !split.isEmpty else {
                    throw PrepareError("\(place): expected \(columns.joined(separator: ",")) with times start < end, got '\(row.joined(separator: ","))'")
                }
                let label = field(0).flatMap { $0.isEmpty ? nil : $0 }
                let name = String(format: "%@_%06d_%06d", id, Int(start), Int(end))
                fileOf[split] = fileOf[split] ?? csv.path
                try e.add(name, label: label, split: split, at: place)
            }
        }
        // a clip belongs to one split, whatever the splits are called
        let splits = e.listed.keys.sorted()
        let pairs = splits.indices.flatMap { i in splits[(i + 1)...].map { (splits[i], $0) } }
        let classes = Array(Set(e.label.values.compactMap { $0 })).sorted()
        return try listing(e, classes: classes, disjoint: pairs, file: { fileOf[$0] ?? source.path }, resolve: { byStem[$0] })
    }

    // MARK: - Something-Something v2

    func ssv2(_ dir: URL) throws -> LayoutListing {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
        func file(_ suffix: String) -> URL? { names.first { $0.hasSuffix(suffix) }.map { dir.appendingPathComponent($0) } }
        guard let labelsFile = file("labels.json") else { throw PrepareError("\(dir.path): no labels JSON (something-something-v2-labels.json)") }
        guard let labels = try BoundedInput.json(labelsFile, what: "labels JSON") as? [String: Any] else {
            throw PrepareError("\(labelsFile.path): not a JSON object of template -> index")
        }
        var indexed: [(Int, String)] = []
        for (template, value) in labels {
            guard let i = (value as? String).flatMap({ Int($0) }) ?? (value as? Int) else {
                throw PrepareError("\(labelsFile.path): class '\(template)' has index '\(value)', expected an integer")
            }
            indexed.append((i, template))
        }
        let classes = indexed.sorted { $0.0 < $1.0 }.map(\.1)
        guard !classes.isEmpty, indexed.map(\.0).sorted() == Array(0..<classes.count) else {
            throw PrepareError("\(labelsFile.path): class indices must be 0...\(max(classes.count - 1, 0)), each once")
        }
        let known = Set(classes)
        var e = Entries()
        var fileOf: [String: String] = [:]
        var found = false
        for (suffix, split) in [("train.json", "train"), ("validation.json", "validation"), ("test.json", "test")] {
            guard let url = file(suffix) else { continue }
            found = true
            fileOf[split] = url.path
            e.listed[split] = 0
            guard let entries = try BoundedInput.json(url, what: "split JSON") as? [Any] else {
                throw PrepareError("\(url.path): not a JSON list of {id, template} entries")
            }
            for (n, item) in entries.enumerated() {
                let place = "\(url.path): entry \(n + 1)"
                guard let entry = item as? [String: Any], let id = (entry["id"] as? String) ?? (entry["id"] as? Int).map(String.init), !id.isEmpty else {
                    throw PrepareError("\(place): expected an object with an 'id'")
                }
                var label: String?
                if split != "test" {
                    guard let template = entry["template"] as? String else { throw PrepareError("\(place): video \(id) has no 'template'") }
                    let cls = template.replacingOccurrences(of: "[", with: "").replacingOccurrences(of: "]", with: "")
                    guard known.contains(cls) else { throw PrepareError("\(place): class '\(cls)' is not in \(labelsFile.lastPathComponent)") }
                    label = cls
                }
                try e.add(id, label: label, split: split, at: place)
            }
        }
        guard found else { throw PrepareError("\(dir.path): no train / validation JSON (something-something-v2-train.json)") }
        return try listing(e, classes: classes, disjoint: [("train", "validation"), ("train", "test"), ("validation", "test")],
                           file: { fileOf[$0] ?? dir.path }, resolve: { byStem[$0] })
    }
}
