"""Virtual machine scale sets in the ARM simulator driven by the official Azure SDK for Python
(`ComputeManagementClient.virtual_machine_scale_sets` and `virtual_machine_scale_set_vms`): its
pollers, models and paging must work against the simulator unchanged."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from test_arm_sdk import FAST, GALLERY, PASSWORD, clients, linux_definition, unique


def version(compute, sim, rg, name):
    return compute.gallery_image_versions.begin_create_or_update(
        rg,
        "vmss_gallery",
        "ubuntu",
        name,
        {
            "location": "eastus",
            "properties": {
                "publishingProfile": {"targetRegions": [{"name": "eastus"}]},
                "storageProfile": {"source": {"id": sim["SOURCE_LINUX_IMAGE_ID"]}},
                "safetyProfile": {"blockDeletionBeforeEndOfLife": False},
            },
        },
        **GALLERY,
    ).result()


def scale_set_body(sim, image_id, capacity, **properties):
    return {
        "location": "eastus",
        "sku": {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": capacity},
        "properties": {
            "upgradePolicy": {"mode": "Manual"},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"id": image_id}},
                "osProfile": {"computerNamePrefix": "sdk", "adminUsername": "azureuser", "adminPassword": PASSWORD},
                "networkProfile": {
                    "networkInterfaceConfigurations": [
                        {
                            "name": "nic",
                            "properties": {
                                "primary": True,
                                "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": sim["SUBNET_ID"]}}}],
                            },
                        }
                    ]
                },
            },
            **properties,
        },
    }


def test_uniform_scale_set_through_the_sdk(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-vmss-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    compute.galleries.begin_create_or_update(rg, "vmss_gallery", {"location": "eastus"}, **GALLERY).result()
    compute.gallery_images.begin_create_or_update(rg, "vmss_gallery", "ubuntu", linux_definition(), **GALLERY).result()
    v1 = version(compute, arm_sim, rg, "1.0.0")
    v2 = version(compute, arm_sim, rg, "2.0.0")

    vmss = compute.virtual_machine_scale_sets.begin_create_or_update(
        rg, "web", scale_set_body(arm_sim, v1.id, 2), **FAST
    ).result()
    assert vmss.provisioning_state == "Succeeded"
    assert vmss.orchestration_mode == "Uniform"
    assert vmss.sku.capacity == 2
    assert vmss.virtual_machine_profile.os_profile.admin_password is None
    assert vmss.unique_id

    got = compute.virtual_machine_scale_sets.get(rg, "web")
    assert got.upgrade_policy.mode == "Manual"
    assert [s.name for s in compute.virtual_machine_scale_sets.list(rg)] == ["web"]
    assert "web" in [s.name for s in compute.virtual_machine_scale_sets.list_all()]

    instances = list(compute.virtual_machine_scale_set_vms.list(rg, "web"))
    assert sorted(i.instance_id for i in instances) == ["0", "1"]
    assert all(i.latest_model_applied for i in instances)
    assert all(i.storage_profile.image_reference.exact_version == "1.0.0" for i in instances)

    # A model change under Manual: the instances lag until they are upgraded.
    updated = compute.virtual_machine_scale_sets.begin_update(
        rg,
        "web",
        {"properties": {"virtualMachineProfile": {"storageProfile": {"imageReference": {"id": v2.id}}}}},
        **FAST,
    ).result()
    assert updated.virtual_machine_profile.storage_profile.image_reference.id == v2.id
    assert not any(i.latest_model_applied for i in compute.virtual_machine_scale_set_vms.list(rg, "web"))

    compute.virtual_machine_scale_sets.begin_update_instances(
        rg, "web", {"instanceIds": ["0", "1"]}, **FAST
    ).result()
    instances = list(compute.virtual_machine_scale_set_vms.list(rg, "web"))
    assert all(i.latest_model_applied for i in instances)
    assert all(i.storage_profile.image_reference.exact_version == "2.0.0" for i in instances)

    view = compute.virtual_machine_scale_sets.get_instance_view(rg, "web")
    assert [(s.code, s.count) for s in view.virtual_machine.statuses_summary] == [("ProvisioningState/succeeded", 2)]

    # The orchestration mode cannot change.
    with pytest.raises(HttpResponseError) as refused:
        compute.virtual_machine_scale_sets.begin_update(
            rg, "web", {"properties": {"orchestrationMode": "Flexible"}}, **FAST
        ).result()
    assert refused.value.error.code == "PropertyChangeNotAllowed"

    compute.virtual_machine_scale_sets.begin_delete(rg, "web", **FAST).result()
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machine_scale_sets.get(rg, "web")
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machine_scale_set_vms.get(rg, "web", "0")


def test_flexible_scale_set_instances_are_vms_the_sdk_lists_with_the_scale_set_filter(arm_sim):
    resources, compute, _ = clients(arm_sim)
    rg = unique("rg-flex-")
    resources.resource_groups.create_or_update(rg, {"location": "eastus"})
    compute.galleries.begin_create_or_update(rg, "vmss_gallery", {"location": "eastus"}, **GALLERY).result()
    definition = compute.gallery_images.begin_create_or_update(
        rg, "vmss_gallery", "ubuntu", linux_definition(), **GALLERY
    ).result()
    version(compute, arm_sim, rg, "1.0.0")

    body = scale_set_body(arm_sim, definition.id, 2, orchestrationMode="Flexible", platformFaultDomainCount=1)
    flex = compute.virtual_machine_scale_sets.begin_create_or_update(rg, "flex", body, **FAST).result()
    assert flex.orchestration_mode == "Flexible"
    assert flex.virtual_machine_profile.storage_profile.image_reference.exact_version == "1.0.0"

    vms = list(compute.virtual_machines.list(rg, filter=f"'virtualMachineScaleSet/id' eq '{flex.id}'"))
    assert len(vms) == 2
    assert all(vm.virtual_machine_scale_set.id == flex.id for vm in vms)
    assert all(vm.storage_profile.image_reference.exact_version == "1.0.0" for vm in vms)

    with pytest.raises(HttpResponseError) as refused:
        list(compute.virtual_machine_scale_set_vms.list(rg, "flex"))
    assert refused.value.error.code == "OperationNotAllowed"

    compute.virtual_machine_scale_sets.begin_delete(rg, "flex", **FAST).result()
    assert list(compute.virtual_machines.list(rg)) == []
