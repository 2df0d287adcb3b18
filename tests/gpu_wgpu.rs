//! The wgpu backend for real (on lavapipe where there is no GPU): see tests/common/gpu.rs.

#[path = "common/gpu.rs"]
mod gpu;
use gpu::Api;

const API: Api = Api::Wgpu;

#[test]
fn differential_random_shares() {
    gpu::differential(API, 100_000, 64, 16_384, 1);
}

#[test]
fn differential_small_batches_many_jobs() {
    gpu::differential(API, 5_000, 300, 333, 2);
}

#[test]
fn odd_batch_sizes() {
    gpu::odd_batch_sizes(API);
}

#[test]
fn standard_shares_from_midstates() {
    gpu::standard_shares_from_midstates(API);
}

#[test]
fn ceiling_is_measured_and_checked() {
    gpu::ceiling_is_measured_and_checked(API, ("        w[0] = s[0];", "        w[0] = s[1];"));
}

#[test]
fn verify_matches_cpu() {
    gpu::verify_matches_cpu(API);
}

#[test]
fn cli_verify_matches_cpu() {
    gpu::cli_verify_matches_cpu(API);
}

#[test]
fn broken_kernels_fall_back_to_the_cpu() {
    gpu::broken_kernels_fall_back(
        API,
        &[
            (
                "wrong flags",
                "if (meets(hs, ti * 16u)) {",
                "if (!meets(hs, ti * 16u)) {",
            ),
            (
                "missing work item",
                "if (idx >= params.n) {",
                "if (idx >= params.n || idx == 5u) {",
            ),
            ("wrong hash", "0x6a09e667u", "0x6a09e668u"),
        ],
    );
}

#[test]
fn bad_device_index_is_an_error() {
    gpu::bad_device_index_is_an_error(API);
}
