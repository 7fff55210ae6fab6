"""Virtual machine scale sets in the ARM simulator driven by the official Azure SDK for Python
(`ComputeManagementClient.virtual_machine_scale_sets` and `virtual_machine_scale_set_vms`): its
pollers, models and paging must work against the simulator unchanged."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from test_arm_sdk import FAST, GALLERY, PASSWORD, clients, linux_definition, unique

# Scale-set and VM calls go at the Compute api-version of the official swagger extract in
# tests/swagger (ComputeRP/stable/2024-07-01), so that test_oav.py validates their traffic; the
# SDK's own default is newer than any swagger kept there.
COMPUTE_API = "2024-07-01"
COMPUTE = {"api_version": COMPUTE_API}
LRO = {**FAST, **COMPUTE}


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
        rg, "web", scale_set_body(arm_sim, v1.id, 2), **LRO
    ).result()
    assert vmss.provisioning_state == "Succeeded"
    assert vmss.orchestration_mode == "Uniform"
    assert vmss.sku.capacity == 2
    assert vmss.virtual_machine_profile.os_profile.admin_password is None
    assert vmss.unique_id

    got = compute.virtual_machine_scale_sets.get(rg, "web", **COMPUTE)
    assert got.upgrade_policy.mode == "Manual"
    assert [s.name for s in compute.virtual_machine_scale_sets.list(rg, **COMPUTE)] == ["web"]
    assert "web" in [s.name for s in compute.virtual_machine_scale_sets.list_all(**COMPUTE)]

    instances = list(compute.virtual_machine_scale_set_vms.list(rg, "web", **COMPUTE))
    assert sorted(i.instance_id for i in instances) == ["0", "1"]
    assert all(i.latest_model_applied for i in instances)
    assert all(i.storage_profile.image_reference.exact_version == "1.0.0" for i in instances)

    # A model change under Manual: the instances lag until they are upgraded.
    updated = compute.virtual_machine_scale_sets.begin_update(
        rg,
        "web",
        {"properties": {"virtualMachineProfile": {"storageProfile": {"imageReference": {"id": v2.id}}}}},
        **LRO,
    ).result()
    assert updated.virtual_machine_profile.storage_profile.image_reference.id == v2.id
    assert not any(i.latest_model_applied for i in compute.virtual_machine_scale_set_vms.list(rg, "web", **COMPUTE))

    compute.virtual_machine_scale_sets.begin_update_instances(
        rg, "web", {"instanceIds": ["0", "1"]}, **LRO
    ).result()
    instances = list(compute.virtual_machine_scale_set_vms.list(rg, "web", **COMPUTE))
    assert all(i.latest_model_applied for i in instances)
    assert all(i.storage_profile.image_reference.exact_version == "2.0.0" for i in instances)

    view = compute.virtual_machine_scale_sets.get_instance_view(rg, "web", **COMPUTE)
    assert [(s.code, s.count) for s in view.virtual_machine.statuses_summary] == [("ProvisioningState/succeeded", 2)]

    # The orchestration mode cannot change (a PUT: the swagger's update model has no
    # orchestrationMode, so a PATCH carrying it would be a request Azure's API does not define).
    with pytest.raises(HttpResponseError) as refused:
        compute.virtual_machine_scale_sets.begin_create_or_update(
            rg, "web", scale_set_body(arm_sim, v2.id, 2, orchestrationMode="Flexible"), **LRO
        ).result()
    assert refused.value.error.code == "PropertyChangeNotAllowed"

    compute.virtual_machine_scale_sets.begin_delete(rg, "web", **LRO).result()
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machine_scale_sets.get(rg, "web", **COMPUTE)
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machine_scale_set_vms.get(rg, "web", "0", **COMPUTE)


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
    flex = compute.virtual_machine_scale_sets.begin_create_or_update(rg, "flex", body, **LRO).result()
    assert flex.orchestration_mode == "Flexible"
    assert flex.virtual_machine_profile.storage_profile.image_reference.exact_version == "1.0.0"

    vms = list(compute.virtual_machines.list(rg, filter=f"'virtualMachineScaleSet/id' eq '{flex.id}'", **COMPUTE))
    assert len(vms) == 2
    assert all(vm.virtual_machine_scale_set.id == flex.id for vm in vms)
    assert all(vm.storage_profile.image_reference.exact_version == "1.0.0" for vm in vms)

    with pytest.raises(HttpResponseError) as refused:
        list(compute.virtual_machine_scale_set_vms.list(rg, "flex", **COMPUTE))
    assert refused.value.error.code == "OperationNotAllowed"

    compute.virtual_machine_scale_sets.begin_delete(rg, "flex", **LRO).result()
    assert list(compute.virtual_machines.list(rg, **COMPUTE)) == []
