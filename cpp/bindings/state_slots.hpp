// The state arrays an engine keeps per parameter (its slots), decided here only: the rule's, in
// its order; the float32 master copy of a 16-bit parameter (master_weights); with int8 state,
// each rule slot's block scales, "<slot>_absmax" (docs/compressed_state.md). Their names,
// dtypes and shapes, and how the kernels see them (Storage).
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fusedopt/kernel_table.hpp"

namespace fusedopt::bind {

// How the rule's state is stored: in the parameter's precision (float32 for 16-bit parameters),
// as bfloat16 (stochastic rounding), or as int8 codes with a float32 scale per kQuantBlock.
enum class StateDtype { native, bf16, int8 };

// A slot's shape for parameter `p` (SlotShape: torch's keepdim shapes); false where it has none.
inline bool slot_shape(SlotShape k, const CheckedArray& p, std::vector<Py_ssize_t>& out) {
    out.assign(p.shape, p.shape + p.ndim);
    switch (k) {
    case SlotShape::param: return true;
    case SlotShape::unfactored: return p.ndim < 2;
    case SlotShape::rows:
        if (p.ndim < 2) return false;
        out.back() = 1;
        return true;
    case SlotShape::cols:
        if (p.ndim < 2) return false;
        out[out.size() - 2] = 1;
        return true;
    case SlotShape::scalar: out.clear(); return true;
    }
    return false;
}

struct SlotLayout {
    const RuleInfo* rule;
    StateDtype state = StateDtype::native;
    bool master = false;

    int rule_slots() const { return rule->slot_count; }
    bool int8() const { return state == StateDtype::int8; }
    int count() const { return rule_slots() + (master ? 1 : 0) + (int8() ? rule_slots() : 0); }
    int master_slot() const { return master ? rule_slots() : -1; }
    int first_scales() const { return rule_slots() + (master ? 1 : 0); }
    bool is_scales(int k) const { return int8() && k >= first_scales(); }
    int scales_of(int k) const { return first_scales() + k; }  // of rule slot k (int8 state)
    int owner(int k) const { return is_scales(k) ? k - first_scales() : k; }

    std::string name(int k) const {
        if (k < rule_slots()) return rule->slots[k].name;
        if (k == master_slot()) return "master";
        return std::string(rule->slots[owner(k)].name) + "_absmax";
    }
    // Whether a parameter of this dtype keeps slot k at all (the master copy: 16-bit ones only).
    bool applies(int k, DType param) const { return k != master_slot() || low_precision(param); }
    DType dtype(int k, DType param) const {
        if (k >= rule_slots()) return DType::f32;  // the master copy, block scales
        switch (state) {
        case StateDtype::native: return low_precision(param) ? DType::f32 : param;
        case StateDtype::bf16: return DType::bf16;
        case StateDtype::int8: return DType::u8;
        }
        return param;
    }
    // Like the parameter, and in its memory layout.
    bool param_shaped(int k) const { return k >= rule_slots() ? !is_scales(k) : rule->slots[k].shape == SlotShape::param; }
    // Slot k's shape for parameter `p`; false where it has none.
    bool shape(int k, const CheckedArray& p, std::vector<Py_ssize_t>& out) const {
        if (k < rule_slots()) return slot_shape(rule->slots[k].shape, p, out);
        if (k == master_slot()) return slot_shape(SlotShape::param, p, out);
        out.assign(1, static_cast<Py_ssize_t>((p.size + kQuantBlock - 1) / kQuantBlock));
        return true;
    }
    // The slots a step uses: the rule's (`rule_used`), the master copy, the scales of the used ones.
    unsigned used(unsigned rule_used, DType param) const {
        unsigned u = rule_used;
        if (master && low_precision(param)) u |= 1u << master_slot();
        if (int8()) u |= rule_used << first_scales();
        return u;
    }
    // How the kernels see a parameter's operands (slot k is operand 2 + k).
    void describe(Storage& st) const {
        for (int k = 0; k < rule_slots(); ++k) {  // (unfactored: like the parameter where present)
            const SlotShape shape = rule->slots[k].shape;
            if (shape != SlotShape::param && shape != SlotShape::unfactored) st.slot[2 + k] = SlotStorage::whole;
        }
        if (state == StateDtype::native) return;
        for (int k = 0; k < rule_slots(); ++k) {
            const bool nonnegative = rule->slots[k].codec == SlotCodec::nonnegative;
            st.slot[2 + k] = state == StateDtype::bf16 ? SlotStorage::bf16
                             : nonnegative             ? SlotStorage::q8_unsigned
                                                       : SlotStorage::q8_signed;
            if (int8()) {
                st.scales[2 + k] = 2 + scales_of(k);
                st.slot[2 + scales_of(k)] = SlotStorage::scales;
            }
        }
    }
    // Why this rule cannot store its state compressed (null: it can).
    const char* refusal() const {
        if (state == StateDtype::native) return nullptr;
        if (rule->reduce.passes > 0) return "its per-array reductions read the state in float32";
        for (int k = 0; k < rule_slots(); ++k)
            if (rule->slots[k].codec == SlotCodec::none) return "it keeps its state in the parameters' precision";
        return nullptr;
    }
};

}  // namespace fusedopt::bind
