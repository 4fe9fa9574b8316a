import CBLAS
import CFFmpeg
import CHDF5
import XCTest

/// The system-library targets link, and their shims return the values of the C macros.
final class CBindingsTests: XCTestCase {
    func testOpenBLASMultiplies() {
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1, a, 2, b, 2, 0, &c, 2)
        XCTAssertEqual(c, [19, 22, 43, 50])
    }

    func testHDF5ShimsGiveValidIdentifiers() {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        XCTAssertEqual(H5get_libversion(&major, &minor, &release), 0)
        // the library that runs is the one whose headers the shims were compiled against
        XCTAssertEqual([major, minor], [UInt32(H5_VERS_MAJOR), UInt32(H5_VERS_MINOR)])
        XCTAssertEqual(maclr_H5P_DEFAULT(), 0)
        XCTAssertGreaterThan(maclr_H5T_NATIVE_FLOAT(), 0)
        XCTAssertEqual(H5Tget_size(maclr_H5T_NATIVE_FLOAT()), 4)
        XCTAssertEqual(H5Tget_size(maclr_H5T_NATIVE_UINT8()), 1)
        XCTAssertNotEqual(maclr_H5F_ACC_TRUNC(), maclr_H5F_ACC_RDONLY())
    }

    func testFFmpegShimsGiveTheMacroValues() {
        // the libraries that run have the major version (ABI) of the headers the shims were compiled against
        XCTAssertEqual(avformat_version() >> 16, UInt32(LIBAVFORMAT_VERSION_MAJOR))
        XCTAssertEqual(avcodec_version() >> 16, UInt32(LIBAVCODEC_VERSION_MAJOR))
        XCTAssertEqual(maclr_AVERROR(EAGAIN), -EAGAIN)
        XCTAssertEqual(maclr_AVERROR_EAGAIN(), -EAGAIN)
        // AVERROR_EOF is FFERRTAG('E','O','F',' ')
        XCTAssertEqual(maclr_AVERROR_EOF(), -Int32(bitPattern: 0x45 | (0x4F << 8) | (0x46 << 16) | (0x20 << 24)))
        XCTAssertEqual(maclr_AV_NOPTS_VALUE(), Int64.min)
        XCTAssertNotNil(avcodec_find_decoder(AV_CODEC_ID_H264))
    }
}
