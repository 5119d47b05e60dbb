;; A job written by hand in the WebAssembly text format — no Rust, no wit-bindgen, no SDK —
;; targeting the `cue:job/job` world: it reports progress through `cue:job/host` and exports
;; `triple(x: u32) -> u32`. Built to target/guests/wat-triple.wasm by `cargo xtask guests`.
(component
  (import "cue:job/host@0.1.0" (instance $host
    (export "progress" (func (param "done" u64) (param "total" u64)))))
  (core func $progress (canon lower (func $host "progress")))
  (core module $job
    (import "host" "progress" (func $progress (param i64 i64)))
    (func (export "triple") (param $x i32) (result i32)
      (call $progress (i64.const 1) (i64.const 1))
      (i32.mul (local.get $x) (i32.const 3))))
  (core instance $host_core (export "progress" (func $progress)))
  (core instance $i (instantiate $job (with "host" (instance $host_core))))
  (func (export "triple") (param "x" u32) (result u32)
    (canon lift (core func $i "triple"))))
