import DataHDF5
import Foundation
import XCTest

/// Tiny trees in the official layouts of UCF101, HMDB51, Kinetics and Something-Something v2
/// (real video files under the official names, split files in the official formats), prepared
/// through the CLI; and every kind of bad split file, refused in one line with nothing written.
final class OfficialLayoutTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("layouts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// One real video file (AVI, 8 frames of 32x32), made once by `maclr synth`.
    static func sampleVideo(in dir: URL) throws -> URL {
        let synth = dir.appendingPathComponent("synth")
        let r = try runMaclr(["synth", synth.path, "--classes", "2", "--per-class", "1", "--frames", "8", "--size", "32", "--container", "avi"])
        XCTAssertEqual(r.status, 0, r.err)
        let csv = try String(contentsOf: synth.appendingPathComponent("labels.csv"), encoding: .utf8).split(separator: "\n")
        return URL(fileURLWithPath: String(csv.dropFirst().first!.split(separator: ",")[0]))
    }

    static func write(_ text: String, _ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    static func place(_ video: URL, _ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: video, to: url)
    }

    /// UCF101: 2 classes x 3 groups, one clip each; split k tests group k. The list names one
    /// HandstandPushups clip in another case than its file (as the official lists do), and
    /// testlist03 lists a clip that has no file.
    static func ucf101(in root: URL, video: URL) throws -> URL {
        let top = root.appendingPathComponent("ucf")
        for g in 1...3 {
            try place(video, top.appendingPathComponent(String(format: "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g%02d_c01.avi", g)))
            try place(video, top.appendingPathComponent(String(format: "UCF-101/HandstandPushups/v_HandStandPushups_g%02d_c01.avi", g)))
        }
        let lists = top.appendingPathComponent("ucfTrainTestlist")
        try write("1 ApplyEyeMakeup\n2 HandstandPushups\n", lists.appendingPathComponent("classInd.txt"))
        for k in 1...3 {
            let train = (1...3).filter { $0 != k }.flatMap { g in
                [String(format: "ApplyEyeMakeup/v_ApplyEyeMakeup_g%02d_c01.avi 1", g), String(format: "HandstandPushups/v_HandStandPushups_g%02d_c01.avi 2", g)]
            }
            var test = [String(format: "ApplyEyeMakeup/v_ApplyEyeMakeup_g%02d_c01.avi", k),
                        String(format: "HandstandPushups/v_Handstandpushups_g%02d_c01.avi", k)]
            if k == 3 { test.append("ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c02.avi") }
            try write(train.joined(separator: "\r\n") + "\r\n", lists.appendingPathComponent(String(format: "trainlist%02d.txt", k)))
            try write(test.joined(separator: "\r\n") + "\r\n", lists.appendingPathComponent(String(format: "testlist%02d.txt", k)))
        }
        return top
    }

    /// HMDB51: 2 classes x 3 videos; split 1 only: ids 1, 2, 0 per class.
    static func hmdb51(in root: URL, video: URL) throws -> URL {
        let top = root.appendingPathComponent("hmdb")
        for cls in ["brush_hair", "cartwheel"] {
            var lines: [String] = []
            for (i, id) in [1, 2, 0].enumerated() {
                let name = "\(cls)_clip_\(i)_u_cm_np1_fr_med_0.avi"
                try place(video, top.appendingPathComponent("\(cls)/\(name)"))
                lines.append("\(name) \(id) ")
            }
            try write(lines.joined(separator: "\n") + "\n", top.appendingPathComponent("testTrainMulti_7030_splits/\(cls)_test_split1.txt"))
        }
        return top
    }

    /// Kinetics: an annotation CSV with quoted labels, clips in label folders and one flat.
    static func kinetics(in root: URL, video: URL) throws -> URL {
        let top = root.appendingPathComponent("kinetics")
        try place(video, top.appendingPathComponent("videos/air_drumming/abc123XYZ_0_000010_000020.mp4"))
        try place(video, top.appendingPathComponent("videos/abseiling/qqq_000002_000012.mp4"))
        try place(video, top.appendingPathComponent("videos/zzz_000030_000040.mp4"))
        try write("label,youtube_id,time_start,time_end,split\n\"air drumming\",abc123XYZ_0,10,20,train\nabseiling,qqq,2,12,train\n"
                  + "\"air drumming\",zzz,30,40,val\n", top.appendingPathComponent("annotations/train.csv"))
        return top
    }

    /// Something-Something v2: labels, train and validation JSON; videos <id>.webm.
    static func ssv2(in root: URL, video: URL) throws -> URL {
        let top = root.appendingPathComponent("ssv2")
        for id in ["101", "102", "205"] { try place(video, top.appendingPathComponent("videos/\(id).webm")) }
        let json = top.appendingPathComponent("labels")
        try write(#"{"Pushing something from left to right": "1", "Holding something next to something": "0"}"#,
                  json.appendingPathComponent("something-something-v2-labels.json"))
        try write(#"[{"id": "101", "label": "holding a cup next to a pen", "template": "Holding [something] next to [something]", "placeholders": ["a cup", "a pen"]}, {"id": "102", "label": "pushing a box from left to right", "template": "Pushing [something] from left to right", "placeholders": ["a box"]}]"#,
                  json.appendingPathComponent("something-something-v2-train.json"))
        try write(#"[{"id": "205", "label": "pushing a pen from left to right", "template": "Pushing [something] from left to right", "placeholders": ["a pen"]}]"#,
                  json.appendingPathComponent("something-something-v2-validation.json"))
        return top
    }

    func prepare(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try runMaclr(["prepare"] + args + ["--size", "32x32", "--no-flow", "--workers", "1"])
    }

    func testEachOfficialLayoutPreparesWithEverySplit() throws {
        let video = try Self.sampleVideo(in: dir)
        let ucf = try Self.ucf101(in: dir, video: video)
        var r = try prepare([ucf.path, dir.appendingPathComponent("ucf-ds").path, "--layout", "ucf101"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("train1: 4 listed, 4 found"), r.err)
        XCTAssertTrue(r.err.contains("test3: 3 listed, 2 found, 1 missing"), r.err)
        XCTAssertTrue(r.err.contains("missing: 1 listed video(s) have no file, e.g. ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c02"), r.err)
        var m = try DatasetManifest.load(from: dir.appendingPathComponent("ucf-ds"))
        XCTAssertEqual(m.videoCount, 6)
        XCTAssertEqual(m.classes, ["ApplyEyeMakeup", "HandstandPushups"])
        XCTAssertEqual(m.splits.mapValues(\.count), ["train1": 4, "test1": 2, "train2": 4, "test2": 2, "train3": 4, "test3": 2])
        XCTAssertEqual(Set(m.splits["test1"]!), ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "HandstandPushups/v_HandStandPushups_g01_c01"])
        XCTAssertEqual(try runMaclr(["inspect", dir.appendingPathComponent("ucf-ds").path]).status, 0)

        let hmdb = try Self.hmdb51(in: dir, video: video)
        r = try prepare([hmdb.path, dir.appendingPathComponent("hmdb-ds").path, "--layout", "hmdb51"])
        XCTAssertEqual(r.status, 0, r.err)
        m = try DatasetManifest.load(from: dir.appendingPathComponent("hmdb-ds"))
        XCTAssertEqual(m.classes, ["brush_hair", "cartwheel"])
        XCTAssertEqual(m.videoCount, 4, "the unused videos (id 0) are left out")
        XCTAssertEqual(m.splits.mapValues(\.count), ["train1": 2, "test1": 2])

        // the layouts whose videos and split files sit in folders of their own
        let kinetics = try Self.kinetics(in: dir, video: video), ssv2 = try Self.ssv2(in: dir, video: video)
        let separate: [(layout: String, top: URL, splitFiles: String, classes: [String], splits: [String: Int])] = [
            ("kinetics", kinetics, "annotations", ["abseiling", "air drumming"], ["train": 2, "val": 1]),
            ("ssv2", ssv2, "labels", ["Holding something next to something", "Pushing something from left to right"], ["train": 2, "validation": 1]),
        ]
        for t in separate {
            let out = dir.appendingPathComponent("\(t.layout)-ds")
            r = try prepare([t.top.appendingPathComponent("videos").path, out.path, "--layout", t.layout,
                             "--split-files", t.top.appendingPathComponent(t.splitFiles).path])
            XCTAssertEqual(r.status, 0, r.err)
            m = try DatasetManifest.load(from: out)
            XCTAssertEqual(m.classes, t.classes, t.layout)
            XCTAssertEqual(m.splits.mapValues(\.count), t.splits, t.layout)
        }

        // --check lists and writes nothing
        r = try runMaclr(["prepare", ucf.path, dir.appendingPathComponent("never").path, "--layout", "ucf101", "--check"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("6 videos found, 2 classes; test1 2, test2 2, test3 2, train1 4, train2 4, train3 4"), r.out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("never").path))
    }

    /// A UCF101-layout dataset evaluated and fine-tuned over its three splits, each on its own
    /// train<k> / test<k>, the mean and standard deviation printed.
    func testEvaluationAndFineTuningOverTheOfficialSplits() throws {
        let ucf = try Self.ucf101(in: dir, video: try Self.sampleVideo(in: dir))
        let ds = dir.appendingPathComponent("ucf-ds")
        XCTAssertEqual(try prepare([ucf.path, ds.path, "--layout", "ucf101"]).status, 0)
        let recipes = ReadmeAndRecipeTests.repository.appendingPathComponent("Recipes")
        let small = ["--set", "data.crop=16", "--set", "data.clip_frames=4", "--set", "eval.clips_per_video=1", "--set", "eval.probe_iterations=20",
                     "--set", "model.motion_pathway=none", "--threads", "1"]
        let e = try runMaclr(["eval", "--recipe", recipes.appendingPathComponent("quickstart.yaml").path, "--dataset", ds.path, "--splits", "1,2,3"] + small)
        XCTAssertEqual(e.status, 0, e.err)
        for k in 1...3 { XCTAssertTrue(e.out.contains("split \(k): linear probe: top-1"), e.out) }
        XCTAssertTrue(e.out.contains("(4 train / 2 test videos, 2 classes, 1 views each)"), e.out)
        XCTAssertTrue(e.out.contains("over 3 splits: probe_top1 "), e.out)
        let out = dir.appendingPathComponent("ft")
        let f = try runMaclr(["finetune", recipes.appendingPathComponent("finetune.yaml").path, "--scratch", "--splits", "1,2",
                              "--set", "data.dataset=\(ds.path)", "--set", "train.output=\(out.path)", "--set", "optim.steps=2",
                              "--set", "optim.warmup_steps=1", "--set", "optim.batch_size=4", "--set", "eval.crops_per_clip=1"] + small)
        XCTAssertEqual(f.status, 0, f.err)
        XCTAssertTrue(f.out.contains("over 2 splits: top1 "), f.out)
        for k in 1...2 { XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("split-\(k)/finetune.json").path)) }
    }

    /// Every kind of bad split file: one error line naming the file (and line), exit non-zero,
    /// and no output folder.
    func testBadSplitFilesAreNamedInOneLineAndNothingIsWritten() throws {
        let video = try Self.sampleVideo(in: dir)
        let ucf = try Self.ucf101(in: dir, video: video), lists = ucf.appendingPathComponent("ucfTrainTestlist")
        let hmdb = try Self.hmdb51(in: dir, video: video), hmdbSplits = hmdb.appendingPathComponent("testTrainMulti_7030_splits")
        let kinetics = try Self.kinetics(in: dir, video: video), csv = kinetics.appendingPathComponent("annotations/train.csv")
        let ssv2 = try Self.ssv2(in: dir, video: video), ssv2Train = ssv2.appendingPathComponent("labels/something-something-v2-train.json")
        let trainlist = lists.appendingPathComponent("trainlist01.txt"), testlist = lists.appendingPathComponent("testlist01.txt")
        let goodTrain = try String(contentsOf: trainlist, encoding: .utf8), goodTest = try String(contentsOf: testlist, encoding: .utf8)
        let goodHMDB = try String(contentsOf: hmdbSplits.appendingPathComponent("brush_hair_test_split1.txt"), encoding: .utf8)
        let goodCSV = try String(contentsOf: csv, encoding: .utf8), goodSSv2 = try String(contentsOf: ssv2Train, encoding: .utf8)
        let ucfArgs = [ucf.path, "--layout", "ucf101"], hmdbArgs = [hmdb.path, "--layout", "hmdb51"]
        let kArgs = [kinetics.appendingPathComponent("videos").path, "--layout", "kinetics", "--split-files", csv.path]
        let sArgs = [ssv2.appendingPathComponent("videos").path, "--layout", "ssv2", "--split-files", ssv2.appendingPathComponent("labels").path]
        let cases: [(file: URL, text: String, args: [String], message: String)] = [
            (trainlist, goodTrain + "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi\n", ucfArgs,
             "\(trainlist.path):5: expected '<Class>/<video>.avi <label>'"),
            (testlist, goodTest + "Juggling/v_Juggling_g01_c01.avi\n", ucfArgs, "\(testlist.path):3: class 'Juggling' is not in classInd.txt"),
            (trainlist, goodTrain + "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 2\n", ucfArgs,
             "\(trainlist.path):5: label 2 is HandstandPushups, but the video is in ApplyEyeMakeup/"),
            (trainlist, goodTrain + "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 7\n", ucfArgs, "\(trainlist.path):5: label '7' is not a class index 1...2"),
            (testlist, goodTest + "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c05.avi\n", ucfArgs,
             "\(testlist.path):3: group applyeyemakeup/02 of split 1 is also in train1"),
            (testlist, "", ucfArgs, "\(testlist.path): split test1 lists no video"),
            (hmdbSplits.appendingPathComponent("brush_hair_test_split1.txt"), goodHMDB + "x.avi 7\n", hmdbArgs,
             "brush_hair_test_split1.txt:4: expected '<video>.avi <0|1|2>'"),
            (hmdbSplits.appendingPathComponent("brush_hair_test_split1.txt"), goodHMDB + "cartwheel_clip_0_u_cm_np1_fr_med_0.avi 2\n", hmdbArgs,
             "is also listed for class"),
            (csv, "label,youtube_id,start,end,split\n", kArgs, "\(csv.path):1: expected the header label,youtube_id,time_start,time_end,split"),
            (csv, goodCSV + "abseiling,qqq,20,10,train\n", kArgs, "\(csv.path):5: expected label,youtube_id,time_start,time_end,split with times start < end"),
            (csv, goodCSV + "abseiling,qqq,2,12,val\n", kArgs, "'qqq_000002_000012' is in both train and val"),
            (ssv2Train, goodSSv2.replacingOccurrences(of: "Holding [something] next to [something]", with: "Juggling [something]"), sArgs,
             "something-something-v2-train.json: entry 1: class 'Juggling something' is not in something-something-v2-labels.json"),
        ]
        for (n, c) in cases.enumerated() {
            let original = try String(contentsOf: c.file, encoding: .utf8)
            try c.text.write(to: c.file, atomically: true, encoding: .utf8)
            defer { try? original.write(to: c.file, atomically: true, encoding: .utf8) }
            let out = dir.appendingPathComponent("bad-\(n)")
            let r = try runMaclr(["prepare", c.args[0], out.path] + c.args.dropFirst() + ["--size", "32x32", "--no-flow"])
            XCTAssertNotEqual(r.status, 0, "case \(n)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "case \(n): \(r.err)")
            XCTAssertTrue(r.err.contains(c.message), "case \(n): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "case \(n) wrote \(out.path)")
        }
    }
}
