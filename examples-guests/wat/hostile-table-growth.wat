;; Hostile guest `table-growth`, hand-written: grows its function table without end; ends at
;; the table limit. Built to target/guests/hostile-table-growth.wasm by `cargo xtask guests`.
(component
  (core module $attack
    (table $t 1 funcref)
    (func (export "run")
      (loop $again
        (drop (table.grow $t (ref.null func) (i32.const 1000)))
        (br $again))))
  (core instance $i (instantiate $attack))
  (func (export "run") (canon lift (core func $i "run"))))
