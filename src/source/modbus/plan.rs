//! Request planning: which read requests fetch a station's register map. Neighbouring fields of the same kind and
//! unit id are merged into as few reads as possible, bounded by the most registers per request and the largest
//! gap of unused registers worth reading. Pure code: the plan is made once per station at start.

use crate::config::modbus::{Modbus, RegisterKind};

/// Which field of the register map a slice of a block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// Index into `Modbus::registers`.
    Register(usize),
    Status,
    Timestamp,
}

/// One field to read: where it sits and how many registers (or bits) it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub field: Field,
    pub unit_id: u8,
    pub kind: RegisterKind,
    /// Protocol (zero-based) address.
    pub address: u16,
    pub len: u16,
}

/// Planning limits, from the station's `[station.modbus]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most registers (or bits) per request.
    pub max_per_request: u16,
    /// Most unused registers read to join two fields.
    pub max_gap: u16,
    /// One request per field (fragile devices).
    pub one_per_field: bool,
}

/// One read request and the fields it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub unit_id: u8,
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
    /// Each field with its offset into the block's words.
    pub fields: Vec<(Field, u16, u16)>,
}

impl Block {
    /// Last address read (inclusive), for messages.
    pub fn last(&self) -> u32 {
        self.start as u32 + self.count as u32 - 1
    }
}

/// The fields of a station's register map.
pub fn wanted(m: &Modbus) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = m
        .registers
        .iter()
        .enumerate()
        .map(|(i, r)| Wanted {
            field: Field::Register(i),
            unit_id: r.unit_id,
            kind: r.kind,
            address: r.address,
            len: r.data_type.words(),
        })
        .collect();
    if let Some(s) = &m.status {
        out.push(Wanted {
            field: Field::Status,
            unit_id: s.unit_id,
            kind: s.kind,
            address: s.address,
            len: 1,
        });
    }
    if let Some(t) = &m.timestamp {
        out.push(Wanted {
            field: Field::Timestamp,
            unit_id: m.unit_id,
            kind: t.kind,
            address: t.address,
            len: t.data_type.words(),
        });
    }
    out
}

/// The station's read requests.
pub fn plan(m: &Modbus) -> Vec<Block> {
    plan_fields(
        &wanted(m),
        Limits {
            max_per_request: m.max_registers_per_request,
            max_gap: m.max_gap,
            one_per_field: m.one_request_per_field,
        },
    )
}

/// Greedy merge over fields sorted by (unit id, kind, address): a field joins the open block when the gap before
/// it is at most `max_gap` and the block stays within `max_per_request`. Overlapping fields share registers. A
/// field wider than the limit still gets a block of its own (a value cannot be split across requests).
pub fn plan_fields(fields: &[Wanted], limits: Limits) -> Vec<Block> {
    let mut sorted = fields.to_vec();
    sorted.sort_by_key(|w| (w.unit_id, w.kind, w.address, w.field));
    let max = limits.max_per_request.max(1) as u32;
    let mut blocks: Vec<Block> = Vec::new();
    for w in sorted {
        let (addr, len) = (w.address as u32, w.len as u32);
        if !limits.one_per_field {
            if let Some(b) = blocks.last_mut() {
                let (start, end) = (b.start as u32, b.start as u32 + b.count as u32);
                let new_end = end.max(addr + len);
                if b.unit_id == w.unit_id
                    && b.kind == w.kind
                    && addr <= end + limits.max_gap as u32
                    && new_end - start <= max
                {
                    b.count = (new_end - start) as u16;
                    b.fields.push((w.field, (addr - start) as u16, w.len));
                    continue;
                }
            }
        }
        blocks.push(Block {
            unit_id: w.unit_id,
            kind: w.kind,
            start: w.address,
            count: w.len,
            fields: vec![(w.field, 0, w.len)],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegisterKind::*;

    fn w(i: usize, unit_id: u8, kind: RegisterKind, address: u16, len: u16) -> Wanted {
        Wanted {
            field: Field::Register(i),
            unit_id,
            kind,
            address,
            len,
        }
    }

    const DEFAULT: Limits = Limits {
        max_per_request: 125,
        max_gap: 10,
        one_per_field: false,
    };

    /// Blocks as (unit, kind, start, count) for compact tables.
    fn shape(blocks: &[Block]) -> Vec<(u8, RegisterKind, u16, u16)> {
        blocks
            .iter()
            .map(|b| (b.unit_id, b.kind, b.start, b.count))
            .collect()
    }

    #[test]
    fn planning_table() {
        type Case = (
            &'static str,
            Vec<Wanted>,
            Limits,
            Vec<(u8, RegisterKind, u16, u16)>,
        );
        let cases: Vec<Case> = vec![
            (
                "adjacent f32 values merge",
                vec![
                    w(0, 1, Holding, 0, 2),
                    w(1, 1, Holding, 2, 2),
                    w(2, 1, Holding, 4, 2),
                ],
                DEFAULT,
                vec![(1, Holding, 0, 6)],
            ),
            (
                "a gap of exactly max_gap is filled",
                vec![w(0, 1, Holding, 0, 2), w(1, 1, Holding, 12, 1)],
                DEFAULT,
                vec![(1, Holding, 0, 13)],
            ),
            (
                "a gap one above max_gap splits",
                vec![w(0, 1, Holding, 0, 2), w(1, 1, Holding, 13, 1)],
                DEFAULT,
                vec![(1, Holding, 0, 2), (1, Holding, 13, 1)],
            ),
            (
                "max_gap 0 merges only touching fields",
                vec![
                    w(0, 1, Holding, 0, 1),
                    w(1, 1, Holding, 1, 1),
                    w(2, 1, Holding, 3, 1),
                ],
                Limits {
                    max_gap: 0,
                    ..DEFAULT
                },
                vec![(1, Holding, 0, 2), (1, Holding, 3, 1)],
            ),
            (
                "the request limit splits a run",
                vec![
                    w(0, 1, Holding, 0, 4),
                    w(1, 1, Holding, 4, 4),
                    w(2, 1, Holding, 8, 4),
                ],
                Limits {
                    max_per_request: 8,
                    ..DEFAULT
                },
                vec![(1, Holding, 0, 8), (1, Holding, 8, 4)],
            ),
            (
                "a block ends exactly at 125 registers",
                vec![
                    w(0, 1, Input, 0, 2),
                    w(1, 1, Input, 121, 4),
                    w(2, 1, Input, 125, 2),
                ],
                Limits {
                    max_gap: 200,
                    ..DEFAULT
                },
                vec![(1, Input, 0, 125), (1, Input, 125, 2)],
            ),
            (
                "kinds never merge",
                vec![w(0, 1, Holding, 0, 2), w(1, 1, Input, 2, 2)],
                DEFAULT,
                vec![(1, Holding, 0, 2), (1, Input, 2, 2)],
            ),
            (
                "unit ids never merge, and sort by unit first",
                vec![w(0, 2, Holding, 0, 2), w(1, 1, Holding, 2, 2)],
                DEFAULT,
                vec![(1, Holding, 2, 2), (2, Holding, 0, 2)],
            ),
            (
                "unsorted input is planned in address order",
                vec![
                    w(0, 1, Holding, 20, 2),
                    w(1, 1, Holding, 0, 2),
                    w(2, 1, Holding, 10, 2),
                ],
                DEFAULT,
                vec![(1, Holding, 0, 22)],
            ),
            (
                "overlapping fields share registers",
                vec![w(0, 1, Holding, 0, 4), w(1, 1, Holding, 2, 2)],
                DEFAULT,
                vec![(1, Holding, 0, 4)],
            ),
            (
                "one request per field",
                vec![w(0, 1, Holding, 0, 2), w(1, 1, Holding, 2, 2)],
                Limits {
                    one_per_field: true,
                    ..DEFAULT
                },
                vec![(1, Holding, 0, 2), (1, Holding, 2, 2)],
            ),
            (
                "a field wider than the limit gets its own block",
                vec![w(0, 1, Holding, 0, 4), w(1, 1, Holding, 4, 1)],
                Limits {
                    max_per_request: 2,
                    ..DEFAULT
                },
                vec![(1, Holding, 0, 4), (1, Holding, 4, 1)],
            ),
            (
                "the top of the address space",
                vec![w(0, 1, Holding, 65_532, 4), w(1, 1, Holding, 65_530, 2)],
                DEFAULT,
                vec![(1, Holding, 65_530, 6)],
            ),
            (
                "coils merge like registers",
                vec![w(0, 1, Coil, 5, 1), w(1, 1, Coil, 7, 1)],
                DEFAULT,
                vec![(1, Coil, 5, 3)],
            ),
        ];
        for (name, fields, limits, want) in cases {
            let got = plan_fields(&fields, limits);
            assert_eq!(shape(&got), want, "{name}");
            // Every field lands in exactly one block, inside it.
            for f in &fields {
                let hits: Vec<_> = got
                    .iter()
                    .flat_map(|b| b.fields.iter().map(move |x| (b, x)))
                    .filter(|(_, x)| x.0 == f.field)
                    .collect();
                assert_eq!(hits.len(), 1, "{name}: {:?}", f.field);
                let (b, (_, off, len)) = hits[0];
                assert_eq!(b.start as u32 + *off as u32, f.address as u32, "{name}");
                assert!(off + len <= b.count, "{name}");
            }
        }
    }

    #[test]
    fn one_based_addresses_are_resolved_before_planning() {
        // Config with addressing = "one-based": register 1 is protocol address 0.
        let text = r#"
[[station]]
id = "BN_A_B"
name = "A"
profile = "qcvn40-2011-b"
design_flow_m3_day = 100
receiving_water = { type = "river" }
parameters = { COD = {}, pH = {} }
[station.modbus]
address = "127.0.0.1:502"
addressing = "one-based"
registers = [
  { parameter = "COD", address = 1, type = "f32" },
  { parameter = "pH", address = 3, type = "u16" },
]
status = { kind = "coil", address = 1 }
"#;
        let c = crate::config::Config::from_str(
            text,
            std::path::Path::new("t.toml"),
            std::path::Path::new("."),
        )
        .unwrap();
        let m = c.stations[0].modbus.as_ref().unwrap();
        let blocks = plan(m);
        assert_eq!(shape(&blocks), vec![(1, Holding, 0, 3), (1, Coil, 0, 1)]);
        assert_eq!(
            blocks[0].fields,
            vec![(Field::Register(0), 0, 2), (Field::Register(1), 2, 1)]
        );
        assert_eq!(blocks[1].fields, vec![(Field::Status, 0, 1)]);
    }
}
