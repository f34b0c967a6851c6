//! NVIDIA vGPU migration: the spec names the type (never by id: ids are
//! card-local), the card and the driver build; a destination VF is judged
//! by the name its card offers; prepare sets the type on a free VF by the
//! destination card's own id for that name.
//!
//! Owns: gathering a VF's facts (its type's name from its definition or its
//! card's lists, the PF's ids and driver, the VF's VFIO answer where it can
//! be opened) and the choice of prepare's VF. Must not: hold the rules
//! (hostdev-model's `migrate::check_vgpu`), or write a VF's type or
//! definition itself (`Vgpus::define` and `start` do, under the host lock).

use crate::vgpu::VgpuSlot;
use crate::Interfaces;
use crate::{CoreError, Devices};
use crate::{MigrateError, VgpuError};
use hostdev_api::{CheckReport, Prepared};
use hostdev_model::migrate::{
    self, card_model, CardSpec, DriverPolicy, MigrationSpec, Reason, Verdict, VgpuDestination,
    VgpuSpec,
};
use hostdev_model::pci::PciAddress;
use hostdev_model::vgpu::VgpuType;
use hostdev_model::StartPolicy;
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::VfInfo;
use hostdev_vfio::Target;

impl<K: Interfaces> Devices<K> {
    /// The name of a configured VF's type: its definition's (when it names
    /// the same id), else what another VF of the same card lists under the
    /// id (ids are card-local, so only the same card's lists are asked).
    fn current_type(&self, v: &VfInfo, card_vfs: &[VfInfo]) -> Option<VgpuType> {
        if v.current == 0 {
            return None;
        }
        let named = |name: String| {
            Some(VgpuType {
                id: v.current,
                name,
            })
        };
        if let Ok(Some(d)) = self.vgpu.defs.load(v.address.as_str()) {
            if d.type_id == v.current {
                return named(d.type_name);
            }
        }
        let listed = card_vfs
            .iter()
            .flat_map(|o| &o.creatable)
            .find(|t| t.id == v.current)
            .map(|t| t.name.clone());
        named(listed.unwrap_or_default())
    }

    fn card(&self, pf: &PciAddress, model_from: Option<&str>) -> CardSpec {
        let facts = self.vgpu.sriov.pf_facts(pf);
        CardSpec {
            pf: pf.to_string(),
            model: model_from.and_then(card_model),
            vendor: facts.vendor,
            device: facts.device,
        }
    }

    /// A card's model from any type name one of its VFs lists, else from a
    /// configured VF's type (its definition is read only then).
    fn card_of(&self, pf: &PciAddress, vfs: &[VfInfo]) -> CardSpec {
        let listed = vfs.iter().find_map(|v| v.creatable.first()).cloned();
        let name = listed
            .or_else(|| vfs.iter().find_map(|v| self.current_type(v, vfs)))
            .map(|t| t.name)
            .filter(|n| !n.is_empty());
        self.card(pf, name.as_deref())
    }

    /// A VF and the other VFs of its card, read once.
    fn vf_and_card(&self, vf: &PciAddress) -> Result<(VfInfo, Vec<VfInfo>), CoreError> {
        for (_, vfs) in self.vgpu.inventory(None)? {
            if let Some(v) = vfs.iter().find(|v| &v.address == vf) {
                return Ok((v.clone(), vfs));
            }
        }
        Err(CoreError::from(VgpuError::VfAbsent { vf: vf.clone() }))
    }

    pub(super) fn export_vgpu(&self, vf: &PciAddress) -> Result<MigrationSpec, CoreError> {
        let (v, card_vfs) = self.vf_and_card(vf)?;
        let t = self
            .current_type(&v, &card_vfs)
            .ok_or_else(|| CoreError::from(VgpuError::NotSet { vf: vf.clone() }))?;
        if t.name.is_empty() {
            return Err(CoreError::from(MigrateError::BadSpec {
                why: format!(
                    "VF {vf} has type id {} but neither its definition nor its card's lists name it",
                    t.id
                ),
            }));
        }
        let (migration, unprobed) = match self.vfio.probe(&Target::Pci(vf.clone())) {
            Ok(p) => (p.migration, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(MigrationSpec {
            hostdev_migration_spec: migrate::SPEC_VERSION,
            source: vf.to_string(),
            mdev: None,
            vdpa: None,
            vgpu: Some(VgpuSpec {
                card: self.card(&v.pf, Some(&t.name)),
                type_name: t.name,
                type_id: t.id,
                driver: self.vgpu.sriov.pf_driver(&v.pf),
                migration,
                unprobed,
            }),
        })
    }

    fn vgpu_destination(&self, v: &VfInfo, card_vfs: &[VfInfo], card: CardSpec) -> VgpuDestination {
        let current = self.current_type(v, card_vfs);
        let migration = current.as_ref().and_then(|_| {
            self.vfio
                .probe(&Target::Pci(v.address.clone()))
                .ok()
                .map(|p| p.migration)
        });
        VgpuDestination {
            vf: v.address.to_string(),
            card,
            current,
            offers: v.creatable.clone(),
            driver: self.vgpu.sriov.pf_driver(&v.pf),
            migration,
        }
    }

    /// Against one VF, or against every card's free VFs: the best card's
    /// reasons with a `capacity` line; where no card will do, each card's.
    pub(super) fn check_vgpu(
        &self,
        spec: &VgpuSpec,
        device: Option<&PciAddress>,
        policy: DriverPolicy,
    ) -> Result<CheckReport, CoreError> {
        if let Some(vf) = device {
            let (v, vfs) = self.vf_and_card(vf)?;
            let d = self.vgpu_destination(&v, &vfs, self.card_of(&v.pf, &vfs));
            let (verdict, reasons) = migrate::check_vgpu(spec, &d, policy);
            return Ok(CheckReport { verdict, reasons });
        }
        let mut judged: Vec<(Verdict, Vec<Reason>)> = Vec::new();
        for (pf, vfs) in self.vgpu.inventory(None)? {
            let card = self.card_of(&pf.address, &vfs);
            let free = self.free_vfs(&vfs);
            let Some(first) = free.first() else {
                let why = if vfs.is_empty() {
                    "it has no VFs enabled (vgpu enable)".to_string()
                } else {
                    format!("none of its {} VFs is free and set up", vfs.len())
                };
                judged.push((
                    Verdict::Incompatible,
                    vec![capacity(&card, false, "no free VF".into(), why)],
                ));
                continue;
            };
            let (verdict, mut reasons) = migrate::check_vgpu(
                spec,
                &self.vgpu_destination(first, &vfs, card.clone()),
                policy,
            );
            let takers = free
                .iter()
                .filter(|v| v.creatable.iter().any(|t| t.name == spec.type_name))
                .count();
            reasons.push(capacity(
                &card,
                takers > 0,
                format!("{takers} free VFs can take it"),
                if takers > 0 {
                    format!("migrate prepare sets it on VF {}", first.address)
                } else {
                    "no free VF of this card can take the type now".into()
                },
            ));
            let worst = reasons.iter().map(|r| r.verdict).max();
            judged.push((worst.unwrap_or(verdict).max(verdict), reasons));
        }
        let best = judged.iter().map(|(v, _)| *v).min();
        let Some(best) = best else {
            return Ok(CheckReport {
                verdict: Verdict::Incompatible,
                reasons: vec![Reason {
                    rule: "capacity".into(),
                    verdict: Verdict::Incompatible,
                    source: spec.type_name.clone(),
                    destination: "no SR-IOV card".into(),
                    why: "this host has no card with vGPU VFs".into(),
                }],
            });
        };
        let reasons = if best == Verdict::Incompatible {
            judged.into_iter().flat_map(|(_, r)| r).collect()
        } else {
            judged
                .into_iter()
                .find(|(v, _)| *v == best)
                .map(|(_, r)| r)
                .unwrap_or_default()
        };
        Ok(CheckReport {
            verdict: best,
            reasons,
        })
    }

    /// Sets the type, by this card's id for its name, on a free VF: a card
    /// of the source's PCI device id first, then any. The VF is defined with
    /// start `manual` (through `vgpu define` and `vgpu start`): the
    /// definition keeps the type's name (sysfs shows a configured VF's id
    /// only) and marks the VF taken; nothing is set at boot (`vgpu
    /// undefine` forgets it).
    pub(super) fn prepare_vgpu(
        &self,
        spec: &VgpuSpec,
        dry_run: bool,
    ) -> Result<Prepared, CoreError> {
        let mut why = Vec::new();
        // Every free VF that offers the name, best first: another prepare
        // (or `vgpu define`) may take one between this look and the define.
        let mut offering: Vec<(u8, VfInfo, VgpuType)> = Vec::new();
        for (pf, vfs) in self.vgpu.inventory(None)? {
            let card = self.card_of(&pf.address, &vfs);
            let rank = u8::from(card.device != spec.card.device);
            let before = offering.len();
            for v in self.free_vfs(&vfs) {
                if let Some(t) = v.creatable.iter().find(|t| t.name == spec.type_name) {
                    offering.push((rank, v.clone(), t.clone()));
                }
            }
            if offering.len() == before {
                why.push(format!(
                    "{} ({}) has no free VF that offers it",
                    pf.address,
                    card.model.as_deref().unwrap_or("card")
                ));
            }
        }
        offering.sort_by(|a, b| (a.0, &a.1.address).cmp(&(b.0, &b.1.address)));
        let no_room = |why: Vec<String>| {
            CoreError::from(MigrateError::NoRoom {
                type_id: spec.type_name.clone(),
                why: if why.is_empty() {
                    "this host has no card with vGPU VFs".into()
                } else {
                    why.join("; ")
                },
            })
        };
        let mut lost = Vec::new();
        let mut chosen = None;
        for (_, v, t) in offering {
            if dry_run {
                chosen = Some((v, t));
                break;
            }
            match self.take_vf(&v.address, &t.name) {
                Ok(()) => {
                    chosen = Some((v, t));
                    break;
                }
                // Taken by another at this instant: the next free one.
                Err(e) if lost_race(&e) => lost.push(format!("{}: {}", v.address, e.chain())),
                Err(e) => return Err(e),
            }
        }
        let Some((v, t)) = chosen else {
            if !lost.is_empty() {
                why.push(format!(
                    "every free VF that offered it was taken by another at the same time ({})",
                    lost.join("; ")
                ));
            }
            return Err(no_room(why));
        };
        Ok(Prepared {
            id: v.address.to_string(),
            parent: v.pf.to_string(),
            type_id: Some(t.name.clone()),
            created: !dry_run,
            libvirt: format!(
                "<!-- {} is type id {} on this card (ids are card-local) -->\n{}",
                t.name,
                t.id,
                hostdev_model::libvirt::pci_hostdev(&v.address)
            ),
        })
    }
}

/// A VF's define or start was refused because another took the VF (or the
/// card's room) at the same instant: the next free VF may do.
fn lost_race(e: &CoreError) -> bool {
    matches!(
        e,
        CoreError::Vgpu(VgpuError::AlreadyDefined { .. })
            | CoreError::Vgpu(VgpuError::Busy { .. })
            | CoreError::Vgpu(VgpuError::TypeNotCreatable { .. })
    )
}

impl<K: Interfaces> Devices<K> {
    /// `vgpu define` (start manual) and `vgpu start` of one VF: they check,
    /// under the host lock, that the VF is still free and still offers the
    /// name. Nothing is left defined that was not made.
    fn take_vf(&self, vf: &PciAddress, type_name: &str) -> Result<(), CoreError> {
        self.vgpu
            .define(&VgpuSlot::Vf(vf.clone()), type_name, StartPolicy::Manual)?;
        if let Err(e) = self.vgpu.start(vf) {
            let _ = self.vgpu.undefine(vf);
            return Err(e);
        }
        Ok(())
    }

    /// VFs set up by the driver, without a type and without a definition.
    fn free_vfs<'a>(&self, vfs: &'a [VfInfo]) -> Vec<&'a VfInfo> {
        vfs.iter()
            .filter(|v| v.ready && v.current == 0 && !self.vgpu.defs.exists(v.address.as_str()))
            .collect()
    }
}

fn capacity(card: &CardSpec, ok: bool, destination: String, why: String) -> Reason {
    Reason {
        rule: "capacity".into(),
        verdict: if ok {
            Verdict::Compatible
        } else {
            Verdict::Incompatible
        },
        source: "a free VF".into(),
        destination: format!("{destination} on {}", card.pf),
        why,
    }
}
