// TrainingSpec <-> the core's training settings: every training flag has a
// proto field of the same name and survives the round trip.
#include "proto/api_convert.h"

#include "gtest/gtest.h"

namespace spinnet::api {
namespace {

TEST(ApiConvertTest, EveryFlagHasAFieldAndRoundTrips) {
  auto spec = MakeTrainingSpec({{"cell", "ctrnn"},
                                {"train-spread", "0.1"},
                                {"test-spread", "0.2"},
                                {"thermal-noise", "0.01"},
                                {"vary", "tau+amplification"},
                                {"dt-in", "0.5"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  v1::TrainingSpec proto;
  for (const TrainingFlag& flag : TrainingFlags()) {
    EXPECT_TRUE(SetSpecField(flag.name, flag.get(*spec), &proto).ok())
        << "--" << flag.name << " has no TrainingSpec field";
  }
  EXPECT_EQ(proto.train_spread(), 0.1);
  EXPECT_EQ(proto.vary(), "tau+amplification");
  auto back = SpecFromProto(SpecToProto(*spec));
  ASSERT_TRUE(back.ok()) << back.status();
  for (const TrainingFlag& flag : TrainingFlags()) {
    EXPECT_EQ(flag.get(*back), flag.get(*spec)) << "--" << flag.name;
  }
}

TEST(ApiConvertTest, UnsetVariabilityFieldsKeepTheDefaults) {
  v1::TrainingSpec proto;
  ASSERT_TRUE(SetSpecField("train-spread", "0.05", &proto).ok());
  auto spec = SpecFromProto(proto);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->train.train_spread, 0.05);
  EXPECT_EQ(spec->train.test_spread, 0);
  EXPECT_EQ(spec->device.thermal_noise, 0);
  EXPECT_EQ(spec->train.vary, kVaryAll);
  ASSERT_TRUE(SetSpecField("vary", "damping", &proto).ok());  // text field
  auto bad = SpecFromProto(proto);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("damping"), std::string::npos);
}

}  // namespace
}  // namespace spinnet::api
