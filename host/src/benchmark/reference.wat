;; Cue's reference workload for `cue benchmark`: a job with no imports that runs `n` rounds
;; of 64-bit integer arithmetic (a PCG-style generator) through a 8 KiB table in linear
;; memory, and returns a checksum so the work cannot be optimised away. Embedded in the
;; `cue` binary and compiled by the host's own sandbox, so fuel per second is measured on
;; exactly the engine that would run a consumer's job.
(component
  (core module $workload
    (memory 1)
    (func (export "spin") (param $n i32) (result i64)
      (local $x i64) (local $sum i64) (local $slot i32)
      (local.set $x (i64.const 0x853c49e6748fea9b))
      (block $done
        (loop $round
          (br_if $done (i32.eqz (local.get $n)))
          (local.set $x
            (i64.add
              (i64.mul (local.get $x) (i64.const 6364136223846793005))
              (i64.const 1442695040888963407)))
          (local.set $slot (i32.shl (i32.and (local.get $n) (i32.const 1023)) (i32.const 3)))
          (local.set $sum
            (i64.xor
              (i64.rotl (local.get $sum) (i64.const 5))
              (i64.load (local.get $slot))))
          (i64.store (local.get $slot) (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 29))))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $round)))
      (local.get $sum)))
  (core instance $i (instantiate $workload))
  (func (export "spin") (param "n" u32) (result u64)
    (canon lift (core func $i "spin"))))
