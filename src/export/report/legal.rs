//! The legal basis the report cites (`reference/regulations.md`): the law, decrees and circulars behind automatic
//! wastewater monitoring, and the regulation whose limits apply (from the station's limit profile).

use super::text::Lang;

/// One instrument: its Vietnamese name (the official one), its English meaning and what the report takes from it.
pub struct Instrument {
    pub vi: &'static str,
    pub en: &'static str,
    pub use_vi: &'static str,
    pub use_en: &'static str,
}

/// The instruments every report cites; the regulation of the limits comes after them ([`regulation`]).
pub const BASIS: [Instrument; 4] = [
    Instrument {
        vi: "Luật Bảo vệ môi trường số 72/2020/QH14, Điều 111",
        en: "Law on Environmental Protection 2020 (No. 72/2020/QH14), Article 111",
        use_vi: "quan trắc nước thải tự động, liên tục và truyền số liệu trực tiếp về Sở Tài nguyên và Môi trường",
        use_en: "automatic continuous wastewater monitoring, data sent directly to the provincial environment department",
    },
    Instrument {
        vi: "Nghị định 08/2022/NĐ-CP, Điều 97–98",
        en: "Decree 08/2022/ND-CP detailing the Law on Environmental Protection, Articles 97–98",
        use_vi: "đối tượng quan trắc tự động theo lưu lượng thiết kế; camera và thiết bị lấy mẫu tự động",
        use_en: "who must monitor automatically, by design flow; camera and automatic sampler",
    },
    Instrument {
        vi: "Thông tư 10/2021/TT-BTNMT",
        en: "Circular 10/2021/TT-BTNMT on environmental monitoring techniques and monitoring data",
        use_vi: "datalogger, truyền số liệu chậm nhất 5 phút sau khi có kết quả, định dạng tệp, trạng thái thiết bị",
        use_en: "datalogger, transmission within 5 minutes of the result, file format, device status",
    },
    Instrument {
        vi: "Nghị định 45/2022/NĐ-CP, Điều 18",
        en: "Decree 45/2022/ND-CP on administrative penalties for environmental protection, Article 18",
        use_vi: "mức vượt quy chuẩn theo bội số (dưới 1,1 lần; 1,1 đến dưới 1,5 lần; …)",
        use_en: "exceedance bands by multiple of the limit (below 1.1×; 1.1× to below 1.5×; …)",
    },
];

/// QCVN 40:2011 and the circular that keeps it in force for existing facilities.
const QCVN40_2011: [Instrument; 2] = [
    Instrument {
        vi: "QCVN 40:2011/BTNMT — Quy chuẩn kỹ thuật quốc gia về nước thải công nghiệp",
        en: "QCVN 40:2011/BTNMT, National technical regulation on industrial wastewater",
        use_vi: "giá trị giới hạn, Cmax = C × Kq × Kf",
        use_en: "limit values, Cmax = C × Kq × Kf",
    },
    Instrument {
        vi: "Thông tư 06/2025/TT-BTNMT, Điều 3",
        en: "Circular 06/2025/TT-BTNMT, Article 3",
        use_vi: "cơ sở hiện hữu được áp dụng QCVN 40:2011/BTNMT đến hết ngày 31/12/2031",
        use_en: "existing facilities may keep QCVN 40:2011/BTNMT until 31/12/2031",
    },
];

/// The instruments behind the station's limit profile, by its title: QCVN 40:2011 profiles cite the regulation and
/// its transition; any other profile (permit limits, QCVN 40:2025) is cited by its own title and source.
pub fn regulation(title: &str) -> &'static [Instrument] {
    if title.trim_start().starts_with("QCVN 40:2011") {
        &QCVN40_2011
    } else {
        &[]
    }
}

/// The regulation's name as the report shows it: the profile's title, with `column` said in Vietnamese on the
/// Vietnamese page (`QCVN 40:2011/BTNMT cột B`).
pub fn regulation_name(title: &str, lang: Lang) -> String {
    match lang {
        Lang::En => title.to_string(),
        Lang::Vi => title.replace(" column ", " cột "),
    }
}
