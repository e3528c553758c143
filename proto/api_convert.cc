#include "proto/api_convert.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace spinnet::api {
namespace {

using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

// CellType -> "CELL_TYPE_": the prefix of the enum's value names.
std::string EnumPrefix(const EnumDescriptor* e) {
  std::string out;
  for (char c : e->name()) {
    if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) {
      out += '_';
    }
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out + "_";
}

std::string FlagName(const FieldDescriptor* f) {
  return absl::StrReplaceAll(f->name(), {{"_", "-"}});
}

}  // namespace

absl::StatusOr<std::vector<Setting>> SettingsFromSpec(
    const v1::TrainingSpec& spec) {
  if (!spec.optimizer().empty() && spec.optimizer() != "adam") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown optimizer '", spec.optimizer(), "'; spinnet trains with adam"));
  }
  std::vector<Setting> settings;
  const auto* desc = spec.GetDescriptor();
  const auto* refl = spec.GetReflection();
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->name() == "optimizer") continue;
    std::string value;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* v = refl->GetEnum(spec, f);
        if (v->number() == 0) continue;
        value = absl::AsciiStrToLower(
            v->name().substr(EnumPrefix(f->enum_type()).size()));
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
        if (!refl->HasField(spec, f)) continue;
        value = FormatDouble(refl->GetDouble(spec, f));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        if (!refl->HasField(spec, f)) continue;
        value = absl::StrCat(refl->GetInt32(spec, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        if (!refl->HasField(spec, f)) continue;
        value = absl::StrCat(refl->GetUInt64(spec, f));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        if (!refl->HasField(spec, f)) continue;
        value = refl->GetBool(spec, f) ? "true" : "false";
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        if (!refl->HasField(spec, f)) continue;
        value = refl->GetString(spec, f);
        break;
      default:
        continue;
    }
    settings.emplace_back(FlagName(f), value);
  }
  return settings;
}

absl::StatusOr<TrainingSpec> SpecFromProto(const v1::TrainingSpec& spec) {
  absl::StatusOr<std::vector<Setting>> settings = SettingsFromSpec(spec);
  if (!settings.ok()) return settings.status();
  return MakeTrainingSpec(*settings);
}

absl::Status SetSpecField(const std::string& flag, const std::string& value,
                          v1::TrainingSpec* spec) {
  const auto* desc = spec->GetDescriptor();
  const FieldDescriptor* f =
      desc->FindFieldByName(absl::StrReplaceAll(flag, {{"-", "_"}}));
  if (f == nullptr || f->name() == "optimizer") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown training setting --", flag));
  }
  const auto* refl = spec->GetReflection();
  const auto bad = [&](const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": '", value, "' is not ", what));
  };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* v = f->enum_type()->FindValueByName(
          EnumPrefix(f->enum_type()) + absl::AsciiStrToUpper(value));
      if (v == nullptr || v->number() == 0) return bad("a known choice");
      refl->SetEnum(spec, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double d;
      if (!absl::SimpleAtod(value, &d)) return bad("a number");
      refl->SetDouble(spec, f, d);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t i;
      if (!absl::SimpleAtoi(value, &i)) return bad("an integer");
      refl->SetInt32(spec, f, i);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t u;
      if (!absl::SimpleAtoi(value, &u)) return bad("an unsigned integer");
      refl->SetUInt64(spec, f, u);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (value == "true" || value == "1" || value.empty()) {
        refl->SetBool(spec, f, true);
      } else if (value == "false" || value == "0") {
        refl->SetBool(spec, f, false);
      } else {
        return bad("true or false");
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      refl->SetString(spec, f, value);
      return absl::OkStatus();
    default:
      return absl::InternalError(absl::StrCat("unhandled field ", f->name()));
  }
}

v1::TrainingSpec SpecToProto(const TrainingSpec& spec) {
  v1::TrainingSpec out;
  for (const TrainingFlag& flag : TrainingFlags()) {
    // Every core flag has a field of the same name (api_convert_test).
    SetSpecField(flag.name, flag.get(spec), &out).IgnoreError();
  }
  out.set_optimizer("adam");
  return out;
}

v1::EpochMetrics EpochMetricsToProto(const EpochMetrics& m) {
  v1::EpochMetrics p;
  p.set_epoch(m.epoch);
  p.set_learning_rate(m.learning_rate);
  p.set_train_loss(m.train_loss);
  p.set_train_accuracy(m.train_accuracy);
  p.set_test_loss(m.test_loss);
  p.set_test_accuracy(m.test_accuracy);
  p.set_samples_per_second(m.samples_per_second);
  p.set_epoch_seconds(m.epoch_seconds);
  p.set_cumulative_drive(m.cumulative_drive);
  p.set_energy_per_sample_joules(m.energy_per_sample_joules);
  return p;
}

}  // namespace spinnet::api
