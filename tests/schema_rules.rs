//! The CRD schema and CEL rules refuse what Azure would refuse, before the operator sees it.

mod schema;

use schema::{assert_accepted, assert_rejected, create_errors, update_errors};
use serde_json::{Value, json};

const SUB: &str = "5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d01";

fn image_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-image-sources/providers/Microsoft.Compute/images/ubuntu-22.04-golden"
    )
}

fn gallery(name: &str) -> Value {
    json!({
        "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "Gallery",
        "metadata": {"name": name},
        "spec": {"resourceGroup": "rg-images", "location": "eastus"}
    })
}

fn definition() -> Value {
    json!({
        "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageDefinition",
        "metadata": {"name": "ubuntu"},
        "spec": {
            "galleryRef": {"name": "platform"},
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "Contoso", "offer": "Ubuntu", "sku": "22_04-lts"}
        }
    })
}

fn version(name: &str) -> Value {
    json!({
        "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "ImageVersion",
        "metadata": {"name": name},
        "spec": {
            "imageDefinitionRef": {"name": "ubuntu"},
            "source": {"managedImageId": image_id()},
            "targetRegions": [{"name": "eastus"}, {"name": "westeurope", "replicaCount": 2}]
        }
    })
}

fn vm() -> Value {
    json!({
        "apiVersion": "compute.gallery.dev/v1alpha1", "kind": "VirtualMachine",
        "metadata": {"name": "web-01"},
        "spec": {
            "resourceGroup": "rg-workloads", "location": "eastus", "size": "Standard_D2s_v5",
            "image": {"imageVersionRef": {"name": "1.0.0"}},
            "adminUsername": "azureuser",
            "sshPublicKeys": ["ssh-ed25519 AAAA azureuser"],
            "network": {"subnetId": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/default")}
        }
    })
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    *obj.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} exists")) = value;
    obj
}

fn without(mut obj: Value, parent: &str, key: &str) -> Value {
    obj.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    obj
}

mod gallery_names {
    use super::*;

    #[test]
    fn a_name_azure_accepts_needs_no_azure_name() {
        assert_accepted(&create_errors(&gallery("platform.images")));
    }

    #[test]
    fn a_hyphenated_name_is_refused_with_a_suggested_azure_name() {
        let errors = create_errors(&gallery("platform-images"));
        assert_rejected(&errors, "not a valid Azure gallery name");
        assert_rejected(&errors, "azureName: platform_images");
    }

    #[test]
    fn azure_name_lifts_the_restriction_on_metadata_name() {
        let g = with(
            gallery("platform-images"),
            "/spec",
            json!({"resourceGroup": "rg", "location": "eastus", "azureName": "platform_images"}),
        );
        assert_accepted(&create_errors(&g));
    }

    #[test]
    fn azure_name_itself_must_be_valid() {
        let g = with(
            gallery("platform"),
            "/spec",
            json!({"resourceGroup": "rg", "location": "eastus", "azureName": "platform-images"}),
        );
        assert_rejected(&create_errors(&g), "/spec/azureName");
        let g = with(
            gallery("platform"),
            "/spec",
            json!({"resourceGroup": "rg", "location": "eastus", "azureName": "x".repeat(81)}),
        );
        assert_rejected(&create_errors(&g), "/spec/azureName");
    }

    #[test]
    fn resource_group_location_and_subscription_are_checked() {
        assert_rejected(
            &create_errors(&with(
                gallery("g"),
                "/spec/resourceGroup",
                json!("ends-with-dot."),
            )),
            "/spec/resourceGroup",
        );
        assert_rejected(
            &create_errors(&with(gallery("g"), "/spec/location", json!("east/us"))),
            "/spec/location",
        );
        let g = with(
            gallery("g"),
            "/spec",
            json!({"resourceGroup": "rg", "location": "eastus", "subscriptionId": "not-a-guid"}),
        );
        assert_rejected(&create_errors(&g), "/spec/subscriptionId");
    }

    #[test]
    fn display_names_of_regions_are_accepted() {
        assert_accepted(&create_errors(&with(
            gallery("g"),
            "/spec/location",
            json!("East US 2"),
        )));
    }

    #[test]
    fn the_resource_group_is_immutable() {
        let old = gallery("g");
        let new = with(old.clone(), "/spec/resourceGroup", json!("rg-other"));
        assert_rejected(&update_errors(&old, &new), "resourceGroup is immutable");
        let new = with(old.clone(), "/spec/location", json!("westus2"));
        assert_rejected(&update_errors(&old, &new), "location is immutable");
    }

    #[test]
    fn description_role_assignments_and_shared_groups_may_change() {
        let old = gallery("g");
        let mut new = old.clone();
        new["spec"]["description"] = json!("new text");
        new["spec"]["sharing"] = json!({"permissions": "Private", "roleAssignments": [
            {"principalId": "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01", "principalType": "ServicePrincipal", "role": "Reader"}
        ]});
        assert_accepted(&update_errors(&old, &new));
        let mut shared = gallery("g");
        shared["spec"]["sharing"] = json!({"permissions": "Groups", "groups": {"subscriptions": ["5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d02"]}});
        let mut more = shared.clone();
        more["spec"]["sharing"]["groups"]["tenants"] =
            json!(["0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02"]);
        assert_accepted(&update_errors(&shared, &more));
    }

    #[test]
    fn sharing_permissions_are_fixed_at_creation() {
        let old = gallery("g");
        let mut new = old.clone();
        new["spec"]["sharing"] = json!({"permissions": "Groups"});
        assert_rejected(&update_errors(&old, &new), "sharing.permissions is fixed");
        let mut community = gallery("g");
        community["spec"]["sharing"] = json!({"permissions": "Community", "community": {
            "publisherUri": "https://contoso.example", "publisherContact": "images@contoso.example",
            "eula": "https://contoso.example/eula", "publicNamePrefix": "contoso"}});
        assert_accepted(&create_errors(&community));
        let mut private = community.clone();
        private["spec"]["sharing"] = json!({"permissions": "Private"});
        assert_rejected(
            &update_errors(&community, &private),
            "sharing.permissions is fixed",
        );
    }

    #[test]
    fn groups_and_community_need_their_permissions() {
        let mut g = gallery("g");
        g["spec"]["sharing"] = json!({"permissions": "Private", "groups": {"subscriptions": ["5f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d02"]}});
        assert_rejected(&create_errors(&g), "permissions: Groups");
        g["spec"]["sharing"] = json!({"permissions": "Community"});
        assert_rejected(&create_errors(&g), "publicNamePrefix");
    }

    #[test]
    fn unknown_sharing_permissions_and_principal_types_are_refused() {
        let mut g = gallery("g");
        g["spec"]["sharing"] = json!({"permissions": "Public"});
        assert_rejected(&create_errors(&g), "/spec/sharing/permissions");
        g["spec"]["sharing"] = json!({"roleAssignments": [{"principalId": "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a01", "principalType": "Robot", "role": "Reader"}]});
        assert_rejected(&create_errors(&g), "principalType");
    }

    #[test]
    fn more_than_fifty_tags_are_refused() {
        let mut g = gallery("g");
        g["spec"]["tags"] = Value::Object((0..51).map(|i| (format!("k{i}"), json!("v"))).collect());
        assert_rejected(&create_errors(&g), "/spec/tags");
    }
}

mod image_definitions {
    use super::*;

    #[test]
    fn a_complete_definition_is_accepted() {
        let mut d = definition();
        d["spec"]["features"] = json!([{"name": "SecurityType", "value": "TrustedLaunch"}]);
        d["spec"]["recommended"] =
            json!({"vCPUs": {"min": 2, "max": 16}, "memory": {"min": 4, "max": 64}});
        d["spec"]["disallowedDiskTypes"] = json!(["Standard_LRS"]);
        d["spec"]["endOfLifeDate"] = json!("2028-01-01T00:00:00Z");
        assert_accepted(&create_errors(&d));
    }

    #[test]
    fn references_stay_in_the_namespace() {
        let elsewhere = with(
            definition(),
            "/spec/galleryRef",
            json!({"name": "platform-team/platform"}),
        );
        assert_rejected(
            &create_errors(&elsewhere),
            "references name an object in the same namespace",
        );
    }

    #[test]
    fn exactly_one_gallery_reference() {
        let both = with(
            definition(),
            "/spec/galleryRef",
            json!({"name": "platform"}),
        );
        let mut both = both;
        both["spec"]["galleryId"] = json!(format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
        ));
        assert_rejected(
            &create_errors(&both),
            "set exactly one of galleryRef, galleryId",
        );
        let neither = without(definition(), "/spec", "galleryRef");
        assert_rejected(
            &create_errors(&neither),
            "set exactly one of galleryRef, galleryId",
        );
    }

    #[test]
    fn enums_are_enforced() {
        assert_rejected(
            &create_errors(&with(definition(), "/spec/osType", json!("Plan9"))),
            "/spec/osType",
        );
        assert_rejected(
            &create_errors(&with(definition(), "/spec/osState", json!("Sealed"))),
            "/spec/osState",
        );
    }

    #[test]
    fn identifier_parts_have_azures_lengths() {
        let long_offer = with(
            definition(),
            "/spec/identifier/offer",
            json!("o".repeat(65)),
        );
        assert_rejected(&create_errors(&long_offer), "/spec/identifier/offer");
    }

    #[test]
    fn an_os_state_change_is_refused() {
        let old = definition();
        let new = with(old.clone(), "/spec/osState", json!("Specialized"));
        assert_rejected(&update_errors(&old, &new), "osState is immutable");
    }

    #[test]
    fn os_type_generation_architecture_and_identifier_are_immutable() {
        let old = definition();
        let cases = [
            ("/spec/osType", json!("Windows"), "osType is immutable"),
            (
                "/spec/identifier/sku",
                json!("24_04-lts"),
                "identifier is immutable",
            ),
        ];
        for (pointer, value, message) in cases {
            assert_rejected(
                &update_errors(&old, &with(old.clone(), pointer, value)),
                message,
            );
        }
        let mut new = old.clone();
        new["spec"]["hyperVGeneration"] = json!("V1");
        assert_rejected(&update_errors(&old, &new), "hyperVGeneration is immutable");
        let mut new = old.clone();
        new["spec"]["architecture"] = json!("Arm64");
        assert_rejected(&update_errors(&old, &new), "architecture is immutable");
    }

    #[test]
    fn defaults_count_as_set_for_immutability() {
        // Created without hyperVGeneration: the schema default V2 was stored; V2 again is fine.
        let old = definition();
        let mut same = old.clone();
        same["spec"]["hyperVGeneration"] = json!("V2");
        same["spec"]["architecture"] = json!("x64");
        assert_accepted(&update_errors(&old, &same));
    }

    #[test]
    fn mutable_fields_may_change() {
        let old = definition();
        let mut new = old.clone();
        new["spec"]["description"] = json!("updated");
        new["spec"]["endOfLifeDate"] = json!("2030-01-01T00:00:00Z");
        assert_accepted(&update_errors(&old, &new));
    }

    #[test]
    fn recommended_ranges_must_be_ordered() {
        let mut d = definition();
        d["spec"]["recommended"] = json!({"vCPUs": {"min": 8, "max": 2}});
        assert_rejected(&create_errors(&d), "min must not exceed max");
    }
}

mod image_versions {
    use super::*;

    #[test]
    fn a_storage_strategy_excludes_a_storage_type_and_cannot_change() {
        let mut v = version("1.0.0");
        v["spec"]["storageAccountStrategy"] = json!("PreferStandard_ZRS");
        assert_accepted(&create_errors(&v));
        let mut both = v.clone();
        both["spec"]["storageAccountType"] = json!("Standard_LRS");
        assert_rejected(&create_errors(&both), "exclude each other");
        let changed = with(
            v.clone(),
            "/spec/storageAccountStrategy",
            json!("DefaultStandard_LRS"),
        );
        assert_rejected(
            &update_errors(&v, &changed),
            "storageAccountStrategy is immutable",
        );
    }

    #[test]
    fn a_deletion_block_needs_an_end_of_life() {
        let mut v = version("1.0.0");
        v["spec"]["blockDeletionBeforeEndOfLife"] = json!(true);
        assert_rejected(&create_errors(&v), "needs endOfLifeDate");
        v["spec"]["endOfLifeDate"] = json!("2030-01-01T00:00:00Z");
        assert_accepted(&create_errors(&v));
    }

    #[test]
    fn a_major_minor_patch_name_is_accepted() {
        assert_accepted(&create_errors(&version("1.0.0")));
        assert_accepted(&create_errors(&version("2147483647.0.12")));
    }

    #[test]
    fn names_that_are_not_major_minor_patch_are_refused() {
        for name in ["1.0", "v1.0.0", "1.0.0.0", "latest", "1.0.2147483648"] {
            assert_rejected(
                &create_errors(&version(name)),
                "is not a valid image version name",
            );
        }
    }

    #[test]
    fn spec_version_overrides_the_object_name() {
        let mut v = version("ubuntu-1-0-0");
        v["spec"]["version"] = json!("1.0.0");
        assert_accepted(&create_errors(&v));
        v["spec"]["version"] = json!("1.0");
        assert_rejected(&create_errors(&v), "/spec/version");
        v["spec"]["version"] = json!("1.0.4294967296");
        assert_rejected(&create_errors(&v), "32-bit integer");
    }

    #[test]
    fn exactly_one_source() {
        let none = with(version("1.0.0"), "/spec/source", json!({}));
        assert_rejected(
            &create_errors(&none),
            "the image source: set exactly one of",
        );
        let two = with(
            version("1.0.0"),
            "/spec/source",
            json!({
                "managedImageId": image_id(),
                "snapshots": {"osDiskSnapshotId": image_id()}
            }),
        );
        assert_rejected(&create_errors(&two), "the image source: set exactly one of");
    }

    #[test]
    fn every_source_kind_is_accepted_alone() {
        let id = image_id();
        for source in [
            json!({"managedImageId": id}),
            json!({"virtualMachineId": id}),
            json!({"imageVersionId": id}),
            json!({"snapshots": {"osDiskSnapshotId": id, "dataDiskSnapshots": [{"lun": 0, "snapshotId": id}]}}),
        ] {
            assert_accepted(&create_errors(&with(
                version("1.0.0"),
                "/spec/source",
                source,
            )));
        }
    }

    #[test]
    fn source_ids_must_be_arm_ids() {
        let v = with(
            version("1.0.0"),
            "/spec/source",
            json!({"managedImageId": "ubuntu-golden"}),
        );
        assert_rejected(&create_errors(&v), "/spec/source/managedImageId");
    }

    #[test]
    fn replica_counts_stay_within_azures_limits() {
        let v = with(
            version("1.0.0"),
            "/spec/targetRegions",
            json!([{"name": "eastus", "replicaCount": 101}]),
        );
        assert_rejected(&create_errors(&v), "/spec/targetRegions/0/replicaCount");
        let v = with(
            version("1.0.0"),
            "/spec/targetRegions",
            json!([{"name": "eastus", "replicaCount": 0}]),
        );
        assert_rejected(&create_errors(&v), "/spec/targetRegions/0/replicaCount");
        let v = with(
            version("1.0.0"),
            "/spec/targetRegions",
            json!([
                {"name": "eastus", "replicaCount": 60}, {"name": "westeurope", "replicaCount": 41}
            ]),
        );
        assert_rejected(&create_errors(&v), "at most 100 replicas");
    }

    #[test]
    fn the_default_replica_count_counts_towards_the_total() {
        let mut v = with(
            version("1.0.0"),
            "/spec/targetRegions",
            json!([
                {"name": "eastus"}, {"name": "westeurope", "replicaCount": 50}
            ]),
        );
        v["spec"]["replicaCount"] = json!(50);
        assert_accepted(&create_errors(&v));
        v["spec"]["replicaCount"] = json!(51);
        assert_rejected(&create_errors(&v), "at most 100 replicas");
    }

    #[test]
    fn a_region_listed_twice_in_any_spelling_is_refused() {
        let v = with(
            version("1.0.0"),
            "/spec/targetRegions",
            json!([{"name": "eastus"}, {"name": "East US"}]),
        );
        assert_rejected(&create_errors(&v), "each region may be listed once");
    }

    #[test]
    fn storage_types_are_enforced() {
        let v = with(
            version("1.0.0"),
            "/spec/targetRegions",
            json!([{"name": "eastus", "storageAccountType": "Premium_ZRS"}]),
        );
        assert_rejected(
            &create_errors(&v),
            "/spec/targetRegions/0/storageAccountType",
        );
    }

    #[test]
    fn the_source_cannot_change_but_regions_can() {
        let old = version("1.0.0");
        let new = with(
            old.clone(),
            "/spec/source",
            json!({"virtualMachineId": image_id()}),
        );
        assert_rejected(&update_errors(&old, &new), "source is immutable");
        let new = with(
            old.clone(),
            "/spec/targetRegions",
            json!([{"name": "eastus", "replicaCount": 3}]),
        );
        assert_accepted(&update_errors(&old, &new));
    }
}

mod virtual_machines {
    use super::*;

    #[test]
    fn a_vm_from_one_image_is_accepted() {
        assert_accepted(&create_errors(&vm()));
    }

    #[test]
    fn security_settings_fit_their_type_and_are_fixed_at_creation() {
        let mut v = vm();
        v["spec"]["security"] = json!({"type": "TrustedLaunch", "secureBoot": false});
        assert_accepted(&create_errors(&v));
        let mut standard = vm();
        standard["spec"]["security"] = json!({"type": "Standard", "vTpm": true});
        assert_rejected(&create_errors(&standard), "UEFI settings");
        let mut cvm = vm();
        cvm["spec"]["security"] = json!({"type": "ConfidentialVM", "vTpm": false});
        assert_rejected(&create_errors(&cvm), "needs secureBoot and vTpm");
        let changed = with(v.clone(), "/spec/security", json!({"type": "Standard"}));
        assert_rejected(&update_errors(&v, &changed), "security is immutable");
    }

    #[test]
    fn two_image_references_are_refused() {
        let v = with(
            vm(),
            "/spec/image",
            json!({"imageVersionRef": {"name": "1.0.0"}, "imageDefinitionRef": {"name": "ubuntu"}}),
        );
        assert_rejected(
            &create_errors(&v),
            "the VM image: set exactly one of imageVersionRef, imageDefinitionRef, imageId",
        );
    }

    #[test]
    fn no_image_reference_is_refused() {
        let v = with(vm(), "/spec/image", json!({}));
        assert_rejected(&create_errors(&v), "the VM image: set exactly one of");
    }

    #[test]
    fn a_tenant_needs_an_image_id() {
        let v = with(
            vm(),
            "/spec/image",
            json!({"imageVersionRef": {"name": "1.0.0"}, "tenantId": "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02"}),
        );
        assert_rejected(&create_errors(&v), "tenantId names the tenant");
        let v = with(
            vm(),
            "/spec/image",
            json!({"imageId": image_id(), "tenantId": "0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02"}),
        );
        assert_accepted(&create_errors(&v));
    }

    #[test]
    fn reserved_admin_names_are_refused() {
        for name in ["admin", "Administrator", "root"] {
            assert_rejected(
                &create_errors(&with(vm(), "/spec/adminUsername", json!(name))),
                "does not allow this admin username",
            );
        }
    }

    #[test]
    fn credentials_need_an_admin_username() {
        let v = without(vm(), "/spec", "adminUsername");
        assert_rejected(&create_errors(&v), "need adminUsername");
        // A specialized image takes neither username nor credentials.
        let v = without(
            without(vm(), "/spec", "adminUsername"),
            "/spec",
            "sshPublicKeys",
        );
        assert_accepted(&create_errors(&v));
    }

    #[test]
    fn a_name_longer_than_azure_allows_needs_an_azure_name() {
        let v = with(vm(), "/metadata/name", json!("v".repeat(65)));
        assert_rejected(&create_errors(&v), "longer than the 64 characters");
    }

    #[test]
    fn ports_and_zones_are_checked() {
        let mut v = vm();
        v["spec"]["network"]["inboundPorts"] = json!([22, 70000]);
        assert_rejected(&create_errors(&v), "/spec/network/inboundPorts/1");
        let v = with(vm(), "/spec/size", json!("Standard_D2s_v5"));
        let mut v = v;
        v["spec"]["zone"] = json!("4");
        assert_rejected(&create_errors(&v), "/spec/zone");
    }

    #[test]
    fn the_image_cannot_change_but_the_size_can() {
        let old = vm();
        let new = with(
            old.clone(),
            "/spec/image",
            json!({"imageVersionRef": {"name": "2.0.0"}}),
        );
        assert_rejected(&update_errors(&old, &new), "image is immutable");
        let new = with(old.clone(), "/spec/size", json!("Standard_D4s_v5"));
        assert_accepted(&update_errors(&old, &new));
    }
}

#[test]
fn every_cel_rule_compiles() {
    for (kind, schema) in schema::schemas() {
        let compiled = kube_cel::compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{kind}: {:?}",
            compiled.compilation_errors()
        );
    }
}
