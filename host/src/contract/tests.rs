//! The contract rules, case by case.

use super::*;
use crate::crypto::Keypair;
use crate::protocol::{JobId, JobInput, Validity};

const NOW: u64 = 1_800_000_000_000;

fn policy() -> ProviderPolicy {
    ProviderPolicy {
        price_per_mfuel: 2,
        base_fee: 10,
        max_concurrent_jobs: 2,
        max_memory_bytes: 64 << 20,
        max_execution_ms: 10_000,
    }
}

fn request(provider: &Keypair) -> ComputeRequest {
    ComputeRequest {
        job_id: JobId([1; 16]),
        provider: provider.public(),
        genesis: Digest([9; 32]),
        component: Digest([2; 32]),
        reference: None,
        input: JobInput::Inline("fib(10)".into()),
        offer: 10 + 2 * 1_000,
        max_fuel: 1_000_000_000,
        max_memory_bytes: 32 << 20,
        max_execution_ms: 5_000,
    }
}

fn view<'a>(me: &'a PublicKey, genesis: &'a Digest, policy: &'a ProviderPolicy) -> Evaluation<'a> {
    Evaluation {
        me,
        genesis,
        policy,
        in_flight: 0,
        capacity: 4,
        consumer_in_flight: 0,
        per_consumer: 3,
        consumer_reputation: 0.5,
        min_reputation: 0.1,
    }
}

#[test]
fn a_provider_refuses_each_broken_term_with_its_reason() {
    let provider = Keypair::from_seed([2; 32]);
    let (me, genesis, policy) = (provider.public(), Digest([9; 32]), policy());
    let ok = request(&provider);
    assert_eq!(evaluate(&ok, &view(&me, &genesis, &policy)), Ok(()));
    let reason =
        |request: ComputeRequest, view: Evaluation<'_>| evaluate(&request, &view).unwrap_err().reason;
    let other = Keypair::from_seed([3; 32]).public();
    assert_eq!(
        reason(ComputeRequest { provider: other, ..ok.clone() }, view(&me, &genesis, &policy)),
        RejectReason::Invalid
    );
    let elsewhere = Digest([8; 32]);
    assert_eq!(reason(ok.clone(), view(&me, &elsewhere, &policy)), RejectReason::Invalid);
    let greedy = ComputeRequest { max_memory_bytes: 1 << 30, ..ok.clone() };
    assert_eq!(reason(greedy, view(&me, &genesis, &policy)), RejectReason::OverLimits);
    let slow = ComputeRequest { max_execution_ms: 60_000, ..ok.clone() };
    assert_eq!(reason(slow, view(&me, &genesis, &policy)), RejectReason::OverLimits);
    let cheap = ComputeRequest { offer: ok.offer - 1, ..ok.clone() };
    assert_eq!(reason(cheap, view(&me, &genesis, &policy)), RejectReason::OfferTooLow);
    let full = Evaluation { in_flight: 4, ..view(&me, &genesis, &policy) };
    assert_eq!(reason(ok.clone(), full), RejectReason::Busy);
    let greedy = Evaluation { in_flight: 3, consumer_in_flight: 3, ..view(&me, &genesis, &policy) };
    assert_eq!(reason(ok.clone(), greedy), RejectReason::Busy, "one consumer holds its whole share");
    let shared = Evaluation { in_flight: 3, consumer_in_flight: 0, ..view(&me, &genesis, &policy) };
    assert_eq!(evaluate(&ok, &shared), Ok(()), "another consumer still gets the slot left");
    let distrusted = Evaluation { consumer_reputation: 0.05, ..view(&me, &genesis, &policy) };
    assert_eq!(reason(ok, distrusted), RejectReason::Reputation);
}

fn signed<T: crate::protocol::EventBody>(key: &Keypair, body: T) -> Signed<T> {
    Signed::sign(key, body, Validity::starting(NOW, 60_000)).unwrap()
}

fn accept_for(provider: &Keypair, request: &Signed<ComputeRequest>, price: u64) -> Signed<ComputeAccept> {
    signed(
        provider,
        ComputeAccept {
            request: request.hash(),
            job_id: request.body().job_id,
            consumer: request.header().signer,
            price_per_mfuel: price,
            base_fee: 10,
            engine: "e1".into(),
            pay_by_ms: NOW + 60_000,
        },
    )
}

#[test]
fn a_consumer_checks_the_accept_and_the_receipt() {
    let (consumer, provider, stranger) =
        (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
    let request = signed(&consumer, request(&provider));
    let accept = accept_for(&provider, &request, 2);
    assert_eq!(check_accept(&request, &accept), Ok(()));
    assert!(matches!(
        check_accept(&request, &accept_for(&stranger, &request, 2)),
        Err(Breach::WrongSigner { .. })
    ));
    assert!(matches!(
        check_accept(&request, &accept_for(&provider, &request, 3)),
        Err(Breach::Overpriced { .. })
    ));

    let output = "55";
    let receipt = |signer: &Keypair, outcome, fuel| {
        signed(
            signer,
            Receipt {
                contract: accept.hash(),
                job_id: request.body().job_id,
                component: request.body().component,
                input: request.body().input_hash(),
                outcome,
                fuel_used: fuel,
                wall_us: 5,
                engine: "e1".into(),
            },
        )
    };
    let good = receipt(&provider, RunOutcome::Output(Digest::of(output.as_bytes())), 100);
    assert_eq!(check_receipt(request.body(), &accept, &good, Some(output)), Ok(()));
    assert_eq!(check_receipt(request.body(), &accept, &good, Some("56")), Err(Breach::OutputMismatch));
    assert_eq!(check_receipt(request.body(), &accept, &good, None), Err(Breach::OutputMismatch));
    let forged = receipt(&stranger, RunOutcome::Output(Digest::of(output.as_bytes())), 100);
    assert!(matches!(
        check_receipt(request.body(), &accept, &forged, Some(output)),
        Err(Breach::WrongSigner { .. })
    ));
    let greedy = receipt(&provider, RunOutcome::Output(Digest::of(output.as_bytes())), 2_000_000_000);
    assert!(matches!(
        check_receipt(request.body(), &accept, &greedy, Some(output)),
        Err(Breach::FuelOverBudget { .. })
    ));
    let failed =
        receipt(&provider, RunOutcome::Failed { kind: "out-of-fuel".into(), message: String::new() }, 100);
    assert_eq!(check_receipt(request.body(), &accept, &failed, None), Ok(()));
}

#[test]
fn the_majority_needs_more_than_half_to_agree_on_output_and_fuel() {
    let receipt = |output: &[u8], fuel| Receipt {
        contract: Digest([0; 32]),
        job_id: JobId([1; 16]),
        component: Digest([2; 32]),
        input: Digest([3; 32]),
        outcome: RunOutcome::Output(Digest::of(output)),
        fuel_used: fuel,
        wall_us: 1,
        engine: "e".into(),
    };
    let (a, b, liar, thirsty) = (receipt(b"1", 10), receipt(b"1", 10), receipt(b"2", 10), receipt(b"1", 11));
    assert_eq!(majority(&[&a, &b, &liar]), Some(vec![0, 1]));
    assert_eq!(majority(&[&liar, &a, &b]), Some(vec![1, 2]));
    assert_eq!(majority(&[&a, &b, &thirsty]), Some(vec![0, 1]), "fuel must agree too");
    assert_eq!(majority(&[&a, &liar]), None, "a tie is no majority");
    assert_eq!(majority(&[&a]), Some(vec![0]));
}

#[test]
fn an_offer_without_a_fuel_budget_buys_what_is_left_after_the_base_fee_and_never_more() {
    // The origin's example: an offer of 15 at a base fee of 10 and 2 per Mfuel buys 2.5 Mfuel.
    let origin = ProviderPolicy { price_per_mfuel: 2, base_fee: 10, ..policy() };
    assert_eq!(fuel_bought(&origin, 15), 2_500_000);
    assert_eq!(minimum_offer(&origin, fuel_bought(&origin, 15)), 15);
    for offer in [0, 9, 10] {
        assert_eq!(fuel_bought(&origin, offer), 0, "an offer of {offer} does not pass the base fee");
    }
    let odd = ProviderPolicy { price_per_mfuel: 3, base_fee: 0, ..policy() };
    for offer in [1, 2, 7, 1_000_001, u64::MAX] {
        let fuel = fuel_bought(&odd, offer);
        assert!(minimum_offer(&odd, fuel) <= offer, "{fuel} fuel at 3 per Mfuel costs more than {offer}");
        assert!(
            fuel == MAX_DERIVED_FUEL || minimum_offer(&odd, fuel + 1) > offer,
            "not the most for {offer}"
        );
    }
    let free = ProviderPolicy { price_per_mfuel: 0, base_fee: 5, ..policy() };
    assert_eq!((fuel_bought(&free, 5), fuel_bought(&free, 4)), (MAX_DERIVED_FUEL, 0));
}

#[test]
fn an_unfit_policy_says_which_rule_failed_with_its_figures() {
    let policy = ProviderPolicy { price_per_mfuel: 1, base_fee: 10, ..policy() };
    assert_eq!(fits(&policy, 32 << 20, 5_000, Some(10_000_000_000), Some(20_000)), Ok(()));
    assert_eq!(fits(&policy, 32 << 20, 5_000, Some(10_000_000_000), None), Ok(()), "no fixed offer");
    let cheap = fits(&policy, 32 << 20, 5_000, Some(10_000_000_000), Some(1_000)).unwrap_err();
    assert_eq!(
        cheap.to_string(),
        "offer 1,000 is below the worst case 10,010 = base 10 + 1 per Mfuel × max fuel 10,000,000,000; \
         lower --max-fuel or raise --pay"
    );
    let greedy = fits(&policy, 1 << 30, 5_000, Some(1), None).unwrap_err();
    assert_eq!(greedy, Unfit::Memory { asked: 1 << 30, allowed: 64 << 20 });
    assert_eq!(greedy.to_string(), "max memory 1,073,741,824 exceeds its 67,108,864");
    let slow = fits(&policy, 1, 60_000, Some(1), None).unwrap_err();
    assert_eq!(slow.to_string(), "time limit 60,000 ms exceeds its 10,000 ms");
    let base_only = fits(&policy, 32 << 20, 5_000, None, Some(10)).unwrap_err();
    assert_eq!(
        base_only.to_string(),
        "offer 10 buys no fuel: its base fee is 10 and it charges 1 per Mfuel; raise --pay (or give --max-fuel)"
    );
    assert_eq!(fits(&policy, 32 << 20, 5_000, None, Some(11)), Ok(()), "the offer buys 1 Mfuel");
    assert_eq!(
        (grouped(0), grouped(999), grouped(1_000), grouped(10_000_010)),
        ("0".into(), "999".into(), "1,000".into(), "10,000,010".into())
    );
}
